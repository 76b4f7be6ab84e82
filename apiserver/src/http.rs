//! HTTP helpers: `metav1.Status` error responses, JSON responses, request body decoding.

use apimachinery::status::ApiError;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::Value;

/// The largest request body accepted (Kubernetes' 3 MiB), larger bodies get 413.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// 404 for a path the server does not serve, as kube-apiserver words it.
pub fn not_found() -> ApiError {
    ApiError {
        code: 404,
        reason: "NotFound".to_owned(),
        message: "the server could not find the requested resource".to_owned(),
        details: Some(Box::default()),
        continue_token: None,
    }
}

/// 405 for a method a path does not support.
pub fn method_not_allowed(method: &str, path: &str) -> ApiError {
    ApiError {
        code: 405,
        reason: "MethodNotAllowed".to_owned(),
        message: format!(
            "the server does not allow this method on the requested resource ({method} {path})"
        ),
        details: Some(Box::default()),
        continue_token: None,
    }
}

/// 413 for a body over [`MAX_BODY_BYTES`].
pub fn too_large() -> ApiError {
    ApiError::request_entity_too_large(format!(
        "the request body is larger than the limit of {MAX_BODY_BYTES} bytes"
    ))
}

/// A `metav1.Status` JSON response for `error`, with the HTTP code it names.
pub fn error_response(error: &ApiError) -> Response {
    let status = error.to_status();
    let body = serde_json::to_vec(&status).unwrap_or_else(|_| b"{}".to_vec());
    let code = StatusCode::from_u16(error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if error.code == 401 {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"kubernetes\""),
        );
    }
    response
}

/// A JSON response with `code`.
pub fn json_response(code: StatusCode, value: &Value) -> Response {
    json_response_typed(code, value, "application/json")
}

/// A JSON response with `code` and Content-Type `content_type`.
pub fn json_response_typed(code: StatusCode, value: &Value, content_type: &str) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = code;
            if let Ok(value) = HeaderValue::from_str(content_type) {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            response
        }
        Err(e) => error_response(&ApiError::internal(format!("encoding response: {e}"))),
    }
}

/// The media type of a Content-Type header, lower-cased, without parameters.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Decodes a create/update body by its Content-Type: JSON (also the default), YAML, or
/// Kubernetes protobuf (`application/vnd.kubernetes.protobuf`, built-in kinds only).
/// Malformed bodies are 400 naming the problem; other media types 415.
pub fn decode_body(content_type: &str, body: &[u8]) -> Result<Value, ApiError> {
    let media = media_type(content_type);
    let value: Value = match media.as_str() {
        "" | "application/json" | "*/*" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => serde_yaml_ng::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?,
        crate::protobuf::PROTOBUF_CONTENT_TYPE => crate::protobuf::decode(body)?,
        other => {
            tracing::debug!(media_type = other, "unsupported request body media type");
            return Err(ApiError::unsupported_media_type(
                "application/json, application/yaml, application/vnd.kubernetes.protobuf",
            ));
        }
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "couldn't get version/kind; json parse error: the body is not a JSON object",
        ));
    }
    Ok(value)
}
