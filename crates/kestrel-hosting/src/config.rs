//! Layered configuration: later sources win, keys are case-insensitive and
//! `:`-separated (`Kestrel:Limits:MaxRequestBodySize`), as in ASP.NET Core.

use std::collections::BTreeMap;

/// A malformed configuration source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A command-line switch has no value (`--urls` at the end).
    #[error("command-line switch '{0}' has no value")]
    MissingValue(String),
    /// A command-line argument is not a `--key value`, `--key=value`, `/key value` or `key=value` pair.
    #[error("unrecognized command-line argument '{0}'")]
    Unrecognized(String),
}

/// Read-only configuration: a flat map of normalized keys to values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Configuration {
    values: BTreeMap<String, (String, String)>,
}

fn normalize(key: &str) -> String {
    key.trim().trim_matches(':').to_ascii_lowercase()
}

impl Configuration {
    /// The value at `key` (case-insensitive), if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(&normalize(key)).map(|(_, v)| v.as_str())
    }

    /// Every key (as first written) and value under `prefix:`, in key order.
    pub fn section(&self, prefix: &str) -> Vec<(&str, &str)> {
        let p = format!("{}:", normalize(prefix));
        self.values
            .iter()
            .filter(|(k, _)| k.starts_with(&p))
            .map(|(_, (orig, v))| (orig.as_str(), v.as_str()))
            .collect()
    }

    fn set(&mut self, key: &str, value: String) {
        let k = normalize(key);
        if !k.is_empty() {
            self.values.insert(k, (key.trim().to_string(), value));
        }
    }
}

/// Builds a [`Configuration`] from sources; sources added later win.
#[derive(Debug, Default)]
pub struct ConfigurationBuilder {
    config: Configuration,
}

impl ConfigurationBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add in-memory key/value pairs.
    pub fn add_pairs<'a>(mut self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        for (k, v) in pairs {
            self.config.set(k, v.to_string());
        }
        self
    }

    /// Add environment variables that start with `prefix` (e.g. `ASPNETCORE_`),
    /// with the prefix removed and `__` read as `:`.
    pub fn add_env_vars(self, prefix: &str) -> Self {
        self.add_env_from(prefix, std::env::vars())
    }

    /// Like [`add_env_vars`](Self::add_env_vars) over the given variables.
    pub fn add_env_from(
        mut self,
        prefix: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        for (name, value) in vars {
            if name.len() >= prefix.len() && name[..prefix.len()].eq_ignore_ascii_case(prefix) {
                let key = name[prefix.len()..].replace("__", ":");
                self.config.set(&key, value);
            }
        }
        self
    }

    /// Add command-line arguments (without the program name): `--key value`,
    /// `--key=value`, `/key value`, `/key=value` and `key=value`.
    pub fn add_command_line<I, S>(mut self, args: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut it = args.into_iter().map(Into::into);
        while let Some(arg) = it.next() {
            let (switch, stripped) = if let Some(r) = arg.strip_prefix("--") {
                (true, r)
            } else if let Some(r) = arg.strip_prefix('/') {
                (true, r)
            } else {
                (false, arg.as_str())
            };
            if let Some((k, v)) = stripped.split_once('=') {
                self.config.set(k, v.to_string());
            } else if switch {
                let value = it
                    .next()
                    .ok_or_else(|| ConfigError::MissingValue(arg.clone()))?;
                self.config.set(stripped, value);
            } else {
                return Err(ConfigError::Unrecognized(arg));
            }
        }
        Ok(self)
    }

    /// The configuration.
    pub fn build(self) -> Configuration {
        self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_sources_win_and_keys_ignore_case() {
        let env = vec![
            ("ASPNETCORE_URLS".to_string(), "http://env:1".to_string()),
            (
                "ASPNETCORE_Kestrel__Limits__MaxRequestBodySize".to_string(),
                "10".to_string(),
            ),
            ("OTHER_URLS".to_string(), "ignored".to_string()),
        ];
        let c = ConfigurationBuilder::new()
            .add_pairs([("urls", "http://default:0")])
            .add_env_from("ASPNETCORE_", env)
            .add_command_line([
                "--urls",
                "http://cli:2",
                "--Kestrel:Limits:MaxRequestBodySize=20",
            ])
            .unwrap()
            .build();
        assert_eq!(c.get("URLS"), Some("http://cli:2"));
        assert_eq!(c.get("kestrel:limits:maxrequestbodysize"), Some("20"));
        assert_eq!(
            c.section("Kestrel:Limits"),
            vec![("Kestrel:Limits:MaxRequestBodySize", "20")]
        );
        let only_env = ConfigurationBuilder::new()
            .add_env_from(
                "ASPNETCORE_",
                vec![("aspnetcore_urls".to_string(), "http://env:1".to_string())],
            )
            .build();
        assert_eq!(only_env.get("urls"), Some("http://env:1"));
    }

    #[test]
    fn command_line_forms() {
        let c = ConfigurationBuilder::new()
            .add_command_line(["/environment", "Development", "key=value", "/a=b"])
            .unwrap()
            .build();
        assert_eq!(c.get("environment"), Some("Development"));
        assert_eq!(c.get("key"), Some("value"));
        assert_eq!(c.get("a"), Some("b"));
        assert_eq!(
            ConfigurationBuilder::new()
                .add_command_line(["--urls"])
                .unwrap_err(),
            ConfigError::MissingValue("--urls".into())
        );
        assert_eq!(
            ConfigurationBuilder::new()
                .add_command_line(["stray"])
                .unwrap_err(),
            ConfigError::Unrecognized("stray".into())
        );
    }
}
