//! Per-request limits (Kestrel's `IHttpMaxRequestBodySizeFeature`,
//! `IHttpMinRequestBodyDataRateFeature` and `IHttpMinResponseDataRateFeature`).
//!
//! Every request carries a [`RequestLimits`] in its extensions, holding the
//! server's defaults. The app may change them for this one request until it
//! first reads the body; after that (or once the request completed) a change
//! is refused with [`FeatureError`] and [`RequestLimits::is_read_only`] says so.
//!
//! One [`LimitsCell`] per connection (or stream) is reused for each request,
//! so the feature costs no allocation per request.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::limits::MinDataRate;

/// The limits in force for one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitValues {
    /// Request body bytes at most (`None`: unlimited).
    pub max_request_body_size: Option<u64>,
    /// Minimum request body data rate (`None`: off).
    pub min_request_body_data_rate: Option<MinDataRate>,
    /// Minimum response data rate (`None`: off).
    pub min_response_data_rate: Option<MinDataRate>,
}

/// A refused change of a request feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FeatureError {
    /// The request body has already started to be read.
    #[error("the request's limits are read-only once its body has started to be read")]
    ReadOnly,
    /// The request has completed.
    #[error("the request has completed")]
    RequestCompleted,
}

#[derive(Debug)]
struct Slot {
    token: u64,
    values: LimitValues,
    read_only: bool,
}

/// The limits of one request, as the app sees them (a typed request extension).
#[derive(Debug, Clone)]
pub struct RequestLimits {
    slot: Arc<Mutex<Slot>>,
    token: u64,
}

fn lock(slot: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    slot.lock().unwrap_or_else(|p| p.into_inner())
}

impl RequestLimits {
    fn read<T>(&self, f: impl FnOnce(&LimitValues) -> T) -> Option<T> {
        let s = lock(&self.slot);
        (s.token == self.token).then(|| f(&s.values))
    }

    fn write(&self, f: impl FnOnce(&mut LimitValues)) -> Result<(), FeatureError> {
        let mut s = lock(&self.slot);
        if s.token != self.token {
            return Err(FeatureError::RequestCompleted);
        }
        if s.read_only {
            return Err(FeatureError::ReadOnly);
        }
        f(&mut s.values);
        Ok(())
    }

    /// Whether the limits can no longer be changed (Kestrel's `IsReadOnly`).
    pub fn is_read_only(&self) -> bool {
        let s = lock(&self.slot);
        s.token != self.token || s.read_only
    }

    /// The body-size limit of this request.
    pub fn max_request_body_size(&self) -> Option<u64> {
        self.read(|v| v.max_request_body_size).flatten()
    }

    /// Change the body-size limit of this request (`None`: unlimited).
    pub fn set_max_request_body_size(&self, limit: Option<u64>) -> Result<(), FeatureError> {
        self.write(|v| v.max_request_body_size = limit)
    }

    /// The minimum request body data rate of this request.
    pub fn min_request_body_data_rate(&self) -> Option<MinDataRate> {
        self.read(|v| v.min_request_body_data_rate).flatten()
    }

    /// Change the minimum request body data rate (`None`: off).
    pub fn set_min_request_body_data_rate(
        &self,
        rate: Option<MinDataRate>,
    ) -> Result<(), FeatureError> {
        self.write(|v| v.min_request_body_data_rate = rate)
    }

    /// The minimum response data rate of this request.
    pub fn min_response_data_rate(&self) -> Option<MinDataRate> {
        self.read(|v| v.min_response_data_rate).flatten()
    }

    /// Change the minimum response data rate (`None`: off).
    pub fn set_min_response_data_rate(
        &self,
        rate: Option<MinDataRate>,
    ) -> Result<(), FeatureError> {
        self.write(|v| v.min_response_data_rate = rate)
    }
}

/// The protocol driver's side: one per connection (HTTP/1) or stream (HTTP/2).
#[derive(Debug, Clone)]
pub struct LimitsCell {
    slot: Arc<Mutex<Slot>>,
}

impl LimitsCell {
    /// A cell holding no request yet.
    pub fn new(defaults: LimitValues) -> Self {
        LimitsCell {
            slot: Arc::new(Mutex::new(Slot {
                token: 0,
                values: defaults,
                read_only: true,
            })),
        }
    }

    /// Start request `token` with `values`; returns the app's handle.
    pub fn begin(&self, token: u64, values: LimitValues) -> RequestLimits {
        let mut s = lock(&self.slot);
        s.token = token;
        s.values = values;
        s.read_only = false;
        RequestLimits {
            slot: self.slot.clone(),
            token,
        }
    }

    /// The body starts to be read: freeze the limits and return them.
    pub fn freeze(&self) -> LimitValues {
        let mut s = lock(&self.slot);
        s.read_only = true;
        s.values
    }

    /// The values in force now.
    pub fn current(&self) -> LimitValues {
        lock(&self.slot).values
    }

    /// Lift the body-size limit (an upgraded request has none), even if frozen.
    pub fn remove_body_size_limit(&self) {
        lock(&self.slot).values.max_request_body_size = None;
    }

    /// The request ended: stale handles refuse changes from now on.
    pub fn end(&self) {
        let mut s = lock(&self.slot);
        s.read_only = true;
        s.token = s.token.wrapping_add(1) | (1 << 63);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn defaults() -> LimitValues {
        LimitValues {
            max_request_body_size: Some(30_000_000),
            min_request_body_data_rate: None,
            min_response_data_rate: None,
        }
    }

    #[test]
    fn changes_until_the_body_is_read() {
        let cell = LimitsCell::new(defaults());
        let req = cell.begin(1, defaults());
        assert!(!req.is_read_only());
        req.set_max_request_body_size(Some(10)).unwrap();
        req.set_max_request_body_size(None).unwrap();
        let rate = MinDataRate::new(10.0, Duration::from_secs(2)).unwrap();
        req.set_min_request_body_data_rate(Some(rate)).unwrap();
        assert_eq!(req.min_request_body_data_rate(), Some(rate));
        let frozen = cell.freeze();
        assert_eq!(frozen.max_request_body_size, None);
        assert!(req.is_read_only());
        assert_eq!(
            req.set_max_request_body_size(Some(5)),
            Err(FeatureError::ReadOnly)
        );
        assert_eq!(req.max_request_body_size(), None);
    }

    #[test]
    fn stale_handles_are_refused() {
        let cell = LimitsCell::new(defaults());
        let first = cell.begin(1, defaults());
        cell.end();
        assert_eq!(
            first.set_max_request_body_size(Some(1)),
            Err(FeatureError::RequestCompleted)
        );
        let second = cell.begin(2, defaults());
        assert_eq!(
            first.set_max_request_body_size(Some(1)),
            Err(FeatureError::RequestCompleted)
        );
        assert!(first.is_read_only());
        second.set_max_request_body_size(Some(1)).unwrap();
        assert_eq!(cell.current().max_request_body_size, Some(1));
    }
}
