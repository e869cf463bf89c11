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
    /// A JSON settings file could not be read.
    #[error("cannot read configuration file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// The I/O error, as text.
        reason: String,
    },
    /// A JSON settings file is not valid JSON, or its top level is not an object.
    #[error("invalid JSON in configuration file {path}: {reason}")]
    Json {
        /// The file.
        path: String,
        /// What is wrong, with line and column.
        reason: String,
    },
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

    /// The names of the direct children of `prefix` (as first written,
    /// deduplicated case-insensitively, in key order): for
    /// `Kestrel:Endpoints` the endpoint names.
    pub fn children(&self, prefix: &str) -> Vec<String> {
        let p = format!("{}:", normalize(prefix));
        let mut out: Vec<String> = Vec::new();
        for (k, (orig, _)) in &self.values {
            if let Some(rest) = k.strip_prefix(&p) {
                let n = rest.split(':').next().unwrap_or("").len();
                if n == 0 {
                    continue;
                }
                let start = orig.len() - rest.len();
                let name = &orig[start..start + n];
                if !out.iter().any(|o| o.eq_ignore_ascii_case(name)) {
                    out.push(name.to_string());
                }
            }
        }
        out
    }

    /// Every key (as first written) and value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.values().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Set `key` to `value` (later calls win).
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.set_value(key, value.into())
    }

    fn set_value(&mut self, key: &str, value: String) {
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
            self.config.set_value(k, v.to_string());
        }
        self
    }

    /// Add a JSON settings file (`appsettings.json`): nested objects become
    /// `a:b:c` keys, array items `a:0`, `a:1`; `null` becomes an empty value
    /// (which clears a nullable setting); numbers and booleans keep their
    /// JSON text. A missing file is skipped when `optional`, otherwise an
    /// error; a malformed file is always an error.
    pub fn add_json_file(
        mut self,
        path: impl AsRef<std::path::Path>,
        optional: bool,
    ) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => return Ok(self),
            Err(e) => {
                return Err(ConfigError::File {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })
            }
        };
        self = self
            .add_json_str(&text)
            .map_err(|reason| ConfigError::Json {
                path: path.display().to_string(),
                reason,
            })?;
        Ok(self)
    }

    /// Add settings from JSON text (see [`add_json_file`](Self::add_json_file)).
    pub fn add_json_str(mut self, text: &str) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if !value.is_object() {
            return Err("the top level must be an object".to_string());
        }
        flatten_json(&mut self.config, "", &value);
        Ok(self)
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
                self.config.set_value(&key, value);
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
                self.config.set_value(k, v.to_string());
            } else if switch {
                let value = it
                    .next()
                    .ok_or_else(|| ConfigError::MissingValue(arg.clone()))?;
                self.config.set_value(stripped, value);
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

fn flatten_json(config: &mut Configuration, prefix: &str, value: &serde_json::Value) {
    use serde_json::Value;
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}:{k}")
        }
    };
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                flatten_json(config, &join(k), v);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten_json(config, &join(&i.to_string()), v);
            }
        }
        Value::Null => config.set_value(prefix, String::new()),
        Value::String(s) => config.set_value(prefix, s.clone()),
        Value::Bool(b) => config.set_value(prefix, b.to_string()),
        Value::Number(n) => config.set_value(prefix, n.to_string()),
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

    #[test]
    fn json_is_flattened() {
        let c = ConfigurationBuilder::new()
            .add_json_str(
                r#"{"Kestrel":{"Limits":{"MaxRequestBodySize":null,"KeepAliveTimeout":"00:00:05"},
                    "Endpoints":{"Web":{"Url":"http://*:80","SslProtocols":["Tls12","Tls13"]}}},
                    "AllowedHosts":"*","Flag":true,"N":1.5}"#,
            )
            .unwrap()
            .build();
        assert_eq!(c.get("kestrel:limits:maxrequestbodysize"), Some(""));
        assert_eq!(c.get("Kestrel:Limits:KeepAliveTimeout"), Some("00:00:05"));
        assert_eq!(c.get("Kestrel:Endpoints:Web:SslProtocols:1"), Some("Tls13"));
        assert_eq!(c.get("flag"), Some("true"));
        assert_eq!(c.get("n"), Some("1.5"));
        assert_eq!(c.children("kestrel:endpoints"), vec!["Web".to_string()]);
        assert_eq!(
            c.children("Kestrel"),
            vec!["Endpoints".to_string(), "Limits".to_string()]
        );
        assert!(ConfigurationBuilder::new().add_json_str("[1]").is_err());
        assert!(ConfigurationBuilder::new().add_json_str("{").is_err());
    }
}
