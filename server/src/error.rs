//! The log's HTTP errors and their statuses, in one place
//! (`spec/PROTOCOL.md` §5.1). Every failure a handler meets becomes an
//! [`ApiError`]: 4xx when the request is at fault, with a reason naming the
//! input; 503 with `Retry-After` when the log cannot take it now (queue,
//! memory, disk, storage, shutdown), and nothing was logged; 500 for the
//! log's own failures, with their reason. The body is always one line of
//! `text/plain`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use vouch_spec::refused::{Refused, Why};

use crate::sequencer::QueueError;
use crate::store::StoreError;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed request.
    #[error("{0}")]
    BadRequest(String),
    /// 400 (malformed) or 403 (anything else) naming one statement of a
    /// submission, also in the `Vouch-Refused` header (§5.1), so that a
    /// submitter can drop it and resend the rest without reading `reason`.
    #[error("{reason}")]
    Refused {
        /// Which statement, and why.
        refused: Refused,
        /// The same for people.
        reason: String,
    },
    /// 404: no such resource.
    #[error("{0}")]
    NotFound(String),
    /// 408: the body did not arrive in time.
    #[error("{0}")]
    Timeout(String),
    /// 413: too large.
    #[error("{0}")]
    TooLarge(String),
    /// 415: not `text/plain`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429: over a rate limit.
    #[error("{reason}")]
    RateLimited {
        /// Which limit.
        reason: String,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// 503: the log cannot take the request now; nothing was logged.
    #[error("{reason}")]
    Unavailable {
        /// Why.
        reason: String,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// 500: the log itself failed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// 503 with `Retry-After`.
    pub fn unavailable(reason: impl Into<String>, retry_after: u64) -> ApiError {
        ApiError::Unavailable {
            reason: reason.into(),
            retry_after,
        }
    }

    /// Statement `position` of a submission refused for `why`.
    pub fn statement(position: usize, why: Why, reason: String) -> ApiError {
        ApiError::Refused {
            refused: Refused { position, why },
            reason,
        }
    }

    /// The status it is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Refused { refused, .. } => match refused.why {
                Why::Malformed => StatusCode::BAD_REQUEST,
                Why::Signature | Why::NotAllowed | Why::Retired => StatusCode::FORBIDDEN,
            },
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// `Retry-After`, for 429 and 503.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after, .. }
            | ApiError::Unavailable { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

impl ApiError {
    /// A submission the sequencer did not log: a retired key's entry (403
    /// with the cutoff), or the store's failure (saying that nothing of
    /// the request was logged).
    pub fn refused(e: crate::sequencer::Refusal) -> ApiError {
        match e {
            crate::sequencer::Refusal::Store(e) => ApiError::not_logged(e),
            r @ crate::sequencer::Refusal::Retired { position, .. } => {
                ApiError::statement(position, Why::Retired, r.to_string())
            }
        }
    }

    /// A storage failure that kept entries from being logged.
    pub fn not_logged(e: StoreError) -> ApiError {
        match ApiError::from(e) {
            ApiError::Unavailable {
                reason,
                retry_after,
            } => ApiError::Unavailable {
                reason: format!("entries were not logged: {reason}"),
                retry_after,
            },
            ApiError::Internal(m) => ApiError::Internal(format!("entries were not logged: {m}")),
            other => other,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::DiskFull(m) => ApiError::unavailable(m, 30),
            StoreError::Io(m) => ApiError::unavailable(format!("storage failed: {m}"), 5),
            StoreError::ReadOnly => ApiError::unavailable(StoreError::ReadOnly.to_string(), 5),
            StoreError::Corrupt(m) => {
                tracing::error!(error = %m, "stored data is corrupt");
                ApiError::Internal(format!("stored data is corrupt: {m}"))
            }
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> ApiError {
        match e {
            QueueError::Full => {
                ApiError::unavailable("the sequencer queue is full; retry shortly", 1)
            }
            QueueError::Closed => {
                ApiError::unavailable("the log is shutting down; nothing was logged", 5)
            }
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> ApiError {
        tracing::error!(error = %e, "a request's worker task failed");
        ApiError::Internal(format!("a worker task failed: {e}"))
    }
}

impl From<vouch::serve::BodyError> for ApiError {
    fn from(e: vouch::serve::BodyError) -> ApiError {
        use vouch::serve::BodyError;
        match e {
            BodyError::TooLarge(_) => ApiError::TooLarge(e.to_string()),
            BodyError::Timeout(_) => ApiError::Timeout(e.to_string()),
            BodyError::Read(_) => ApiError::BadRequest(e.to_string()),
            // The caller's budget refused it; the caller says why.
            BodyError::Refused => ApiError::unavailable("the body was refused; retry shortly", 1),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry = self.retry_after();
        let refused = match &self {
            ApiError::Refused { refused, .. } => HeaderValue::from_str(&refused.to_string()).ok(),
            _ => None,
        };
        let mut r = (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{self}\n"),
        )
            .into_response();
        if let Some(s) = retry {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if let Some(v) = refused {
            r.headers_mut().insert(
                header::HeaderName::from_static(vouch_spec::refused::HEADER),
                v,
            );
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_has_its_status_and_reason() {
        let cases: Vec<(ApiError, u16, Option<u64>, &str)> = vec![
            (
                ApiError::BadRequest("wait=2: want 0 or 1".into()),
                400,
                None,
                "wait=2",
            ),
            (
                ApiError::statement(1, Why::NotAllowed, "entry 1: not allowed".into()),
                403,
                None,
                "not allowed",
            ),
            (
                ApiError::statement(2, Why::Malformed, "attestation 2: bad".into()),
                400,
                None,
                "attestation 2",
            ),
            (
                ApiError::statement(0, Why::Retired, "entry 0 (attestation): retired".into()),
                403,
                None,
                "retired",
            ),
            (
                ApiError::NotFound("tile/9/000 is beyond".into()),
                404,
                None,
                "beyond",
            ),
            (ApiError::Timeout("slow".into()), 408, None, "slow"),
            (ApiError::TooLarge("big".into()), 413, None, "big"),
            (
                ApiError::UnsupportedMediaType("text/plain".into()),
                415,
                None,
                "text/plain",
            ),
            (
                ApiError::RateLimited {
                    reason: "rate".into(),
                    retry_after: 1,
                },
                429,
                Some(1),
                "rate",
            ),
            (
                StoreError::DiskFull("disk nearly full: 3 bytes free".into()).into(),
                503,
                Some(30),
                "disk nearly full: 3 bytes free",
            ),
            (
                ApiError::not_logged(StoreError::DiskFull("disk full: ENOSPC".into())),
                503,
                Some(30),
                "entries were not logged: disk full: ENOSPC",
            ),
            (
                StoreError::Io("EIO".into()).into(),
                503,
                Some(5),
                "storage failed: EIO",
            ),
            (StoreError::ReadOnly.into(), 503, Some(5), "read-only"),
            (QueueError::Full.into(), 503, Some(1), "queue is full"),
            (QueueError::Closed.into(), 503, Some(5), "shutting down"),
            (
                StoreError::Corrupt("tile 0/1 is 5 bytes".into()).into(),
                500,
                None,
                "corrupt: tile 0/1",
            ),
            (
                vouch::serve::BodyError::Timeout(std::time::Duration::from_secs(3)).into(),
                408,
                None,
                "3s",
            ),
            (
                vouch::serve::BodyError::TooLarge(10).into(),
                413,
                None,
                "10 bytes",
            ),
            (
                vouch::serve::BodyError::Read("reset".into()).into(),
                400,
                None,
                "reset",
            ),
        ];
        for (e, status, retry, text) in cases {
            let r = e.clone().into_response();
            assert_eq!(r.status().as_u16(), status, "{e}");
            assert_eq!(
                r.headers()
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok()),
                retry,
                "{e}"
            );
            assert!(e.to_string().contains(text), "{e} should say {text}");
            assert_eq!(
                r.headers().get(header::CONTENT_TYPE).unwrap(),
                "text/plain; charset=utf-8"
            );
            let named = r
                .headers()
                .get(vouch_spec::refused::HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(Refused::parse);
            match &e {
                ApiError::Refused { refused, .. } => assert_eq!(named, Some(*refused), "{e}"),
                _ => assert_eq!(named, None, "{e}"),
            }
        }
    }

    #[tokio::test]
    async fn a_failed_worker_is_a_500_not_a_storage_error() {
        let e: ApiError = tokio::spawn(async { panic!("boom") })
            .await
            .unwrap_err()
            .into();
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.to_string().contains("storage"), "{e}");
    }
}
