//! Why a request was rejected, with the status code the server answers with.

use http::StatusCode;

/// The reason a request was rejected by the HTTP/1.x codec (or the
/// connection driver), named after ASP.NET Core Kestrel's
/// `RequestRejectionReason`.
///
/// Every variant maps to a response status code via
/// [`RequestRejection::status`]; after sending that response the connection
/// must be closed, because the framing of the stream can no longer be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum RequestRejection {
    /// The request line is malformed (bad method, separators, version syntax
    /// or line ending).
    #[error("invalid request line")]
    InvalidRequestLine,
    /// The request target is not a valid origin-, absolute-, authority- or
    /// asterisk-form target.
    #[error("invalid request target")]
    InvalidRequestTarget,
    /// A header field line is malformed.
    #[error("invalid request header")]
    InvalidRequestHeader,
    /// A line of the header section ends in a bare LF instead of CRLF.
    #[error("request header line not terminated by CRLF")]
    InvalidRequestHeadersNoCrlf,
    /// The header section is malformed as a whole.
    #[error("malformed request: invalid headers")]
    MalformedRequestInvalidHeaders,
    /// A Content-Length value is not a valid non-negative decimal integer.
    #[error("invalid content-length")]
    InvalidContentLength,
    /// Several differing Content-Length values were sent.
    #[error("multiple differing content-length values")]
    MultipleContentLengths,
    /// The connection closed before the announced body was received.
    #[error("unexpected end of request content")]
    UnexpectedEndOfRequestContent,
    /// A chunk's data is not followed by CRLF.
    #[error("bad chunk suffix")]
    BadChunkSuffix,
    /// A chunk-size line is malformed (bad hex, overflow, bad extension,
    /// missing CRLF or too long).
    #[error("bad chunk size data")]
    BadChunkSizeData,
    /// The connection closed in the middle of a chunked body.
    #[error("chunked request incomplete")]
    ChunkedRequestIncomplete,
    /// A header field name contains characters outside `token`.
    #[error("invalid characters in header name")]
    InvalidCharactersInHeaderName,
    /// The final transfer coding is not `chunked` (or `chunked` is applied
    /// more than once).
    #[error("final transfer coding is not chunked")]
    FinalTransferCodingNotChunked,
    /// A transfer coding the server does not implement was requested.
    #[error("unsupported transfer coding")]
    UnsupportedTransferCoding,
    /// Both Transfer-Encoding and Content-Length were sent.
    #[error("transfer-encoding together with content-length")]
    TransferEncodingWithContentLength,
    /// Transfer-Encoding was sent in an HTTP/1.0 request.
    #[error("transfer-encoding in an HTTP/1.0 request")]
    TransferEncodingInHttp10,
    /// An HTTP/1.0 POST or PUT request carried no Content-Length.
    #[error("HTTP/1.0 request requires a content-length")]
    LengthRequiredHttp10,
    /// An HTTP/1.1 request has no Host header.
    #[error("missing host header")]
    MissingHostHeader,
    /// A request has more than one Host header field line.
    #[error("multiple host headers")]
    MultipleHostHeaders,
    /// The Host header value is invalid or does not match the target.
    #[error("invalid host header")]
    InvalidHostHeader,
    /// The asterisk-form target `*` was used with a method other than
    /// OPTIONS.
    #[error("asterisk-form target requires the OPTIONS method")]
    OptionsMethodRequired,
    /// The authority-form target was used with a method other than CONNECT.
    #[error("authority-form target requires the CONNECT method")]
    ConnectMethodRequired,
    /// The request head was not received in time.
    #[error("request headers timeout")]
    RequestHeadersTimeout,
    /// The request body was not received in time (or too slowly).
    #[error("request body timeout")]
    RequestBodyTimeout,
    /// The request body is larger than allowed.
    #[error("request body too large")]
    RequestBodyTooLarge,
    /// The request line is longer than allowed.
    #[error("request line too long")]
    RequestLineTooLong,
    /// The header section is larger than allowed.
    #[error("request headers exceed the maximum total size")]
    HeadersExceedMaxTotalSize,
    /// The request has more header fields than allowed.
    #[error("too many request headers")]
    TooManyHeaders,
    /// The request uses an HTTP major version other than 1.
    #[error("unrecognized HTTP version")]
    UnrecognizedHttpVersion,
}

impl RequestRejection {
    /// The status code of the error response for this rejection.
    pub fn status(self) -> StatusCode {
        match self {
            Self::OptionsMethodRequired | Self::ConnectMethodRequired => {
                StatusCode::METHOD_NOT_ALLOWED
            }
            Self::RequestHeadersTimeout | Self::RequestBodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::RequestBodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestLineTooLong => StatusCode::URI_TOO_LONG,
            Self::HeadersExceedMaxTotalSize | Self::TooManyHeaders => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            Self::UnsupportedTransferCoding => StatusCode::NOT_IMPLEMENTED,
            Self::UnrecognizedHttpVersion => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The value of the `Allow` header to send with a 405 rejection, if any.
    pub fn allow(self) -> Option<&'static str> {
        match self {
            Self::OptionsMethodRequired => Some("OPTIONS"),
            Self::ConnectMethodRequired => Some("CONNECT"),
            _ => None,
        }
    }

    /// Kestrel's name for the rejection reason, e.g. `"InvalidRequestLine"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::InvalidRequestLine => "InvalidRequestLine",
            Self::InvalidRequestTarget => "InvalidRequestTarget",
            Self::InvalidRequestHeader => "InvalidRequestHeader",
            Self::InvalidRequestHeadersNoCrlf => "InvalidRequestHeadersNoCrlf",
            Self::MalformedRequestInvalidHeaders => "MalformedRequestInvalidHeaders",
            Self::InvalidContentLength => "InvalidContentLength",
            Self::MultipleContentLengths => "MultipleContentLengths",
            Self::UnexpectedEndOfRequestContent => "UnexpectedEndOfRequestContent",
            Self::BadChunkSuffix => "BadChunkSuffix",
            Self::BadChunkSizeData => "BadChunkSizeData",
            Self::ChunkedRequestIncomplete => "ChunkedRequestIncomplete",
            Self::InvalidCharactersInHeaderName => "InvalidCharactersInHeaderName",
            Self::FinalTransferCodingNotChunked => "FinalTransferCodingNotChunked",
            Self::UnsupportedTransferCoding => "UnsupportedTransferCoding",
            Self::TransferEncodingWithContentLength => "TransferEncodingWithContentLength",
            Self::TransferEncodingInHttp10 => "TransferEncodingInHttp10",
            Self::LengthRequiredHttp10 => "LengthRequiredHttp10",
            Self::MissingHostHeader => "MissingHostHeader",
            Self::MultipleHostHeaders => "MultipleHostHeaders",
            Self::InvalidHostHeader => "InvalidHostHeader",
            Self::OptionsMethodRequired => "OptionsMethodRequired",
            Self::ConnectMethodRequired => "ConnectMethodRequired",
            Self::RequestHeadersTimeout => "RequestHeadersTimeout",
            Self::RequestBodyTimeout => "RequestBodyTimeout",
            Self::RequestBodyTooLarge => "RequestBodyTooLarge",
            Self::RequestLineTooLong => "RequestLineTooLong",
            Self::HeadersExceedMaxTotalSize => "HeadersExceedMaxTotalSize",
            Self::TooManyHeaders => "TooManyHeaders",
            Self::UnrecognizedHttpVersion => "UnrecognizedHttpVersion",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RequestRejection as R;

    const ALL: [R; 29] = [
        R::InvalidRequestLine,
        R::InvalidRequestTarget,
        R::InvalidRequestHeader,
        R::InvalidRequestHeadersNoCrlf,
        R::MalformedRequestInvalidHeaders,
        R::InvalidContentLength,
        R::MultipleContentLengths,
        R::UnexpectedEndOfRequestContent,
        R::BadChunkSuffix,
        R::BadChunkSizeData,
        R::ChunkedRequestIncomplete,
        R::InvalidCharactersInHeaderName,
        R::FinalTransferCodingNotChunked,
        R::UnsupportedTransferCoding,
        R::TransferEncodingWithContentLength,
        R::TransferEncodingInHttp10,
        R::LengthRequiredHttp10,
        R::MissingHostHeader,
        R::MultipleHostHeaders,
        R::InvalidHostHeader,
        R::OptionsMethodRequired,
        R::ConnectMethodRequired,
        R::RequestHeadersTimeout,
        R::RequestBodyTimeout,
        R::RequestBodyTooLarge,
        R::RequestLineTooLong,
        R::HeadersExceedMaxTotalSize,
        R::TooManyHeaders,
        R::UnrecognizedHttpVersion,
    ];

    #[test]
    fn every_reason_has_its_status() {
        for r in ALL {
            let expected = match r {
                R::OptionsMethodRequired | R::ConnectMethodRequired => 405,
                R::RequestHeadersTimeout | R::RequestBodyTimeout => 408,
                R::RequestBodyTooLarge => 413,
                R::RequestLineTooLong => 414,
                R::HeadersExceedMaxTotalSize | R::TooManyHeaders => 431,
                R::UnsupportedTransferCoding => 501,
                R::UnrecognizedHttpVersion => 505,
                _ => 400,
            };
            assert_eq!(r.status().as_u16(), expected, "{r:?}");
            assert_eq!(r.name(), format!("{r:?}"));
            assert!(!r.to_string().is_empty());
        }
        assert_eq!(R::OptionsMethodRequired.allow(), Some("OPTIONS"));
        assert_eq!(R::ConnectMethodRequired.allow(), Some("CONNECT"));
        assert_eq!(R::InvalidRequestLine.allow(), None);
        assert_eq!(R::RequestLineTooLong.to_string(), "request line too long");
    }
}
