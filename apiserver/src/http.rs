//! HTTP helpers: `metav1.Status` error responses, JSON responses, request body decoding.

use apimachinery::status::ApiError;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
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
    // A Status that names a retry delay says it in the header too, as upstream's
    // `responsewriters.ErrorNegotiated` does.
    if let Some(seconds) = error
        .details
        .as_ref()
        .and_then(|d| d.retry_after_seconds)
        .filter(|s| *s > 0)
    {
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
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

/// A `text/plain` response with `code`.
pub fn text_response(code: StatusCode, body: &str) -> Response {
    let mut response = Response::new(Body::from(body.to_owned()));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A `<Kind>List` response written from already encoded items (see
/// [`ResourceHandler::list_encoded`](crate::ResourceHandler::list_encoded)): the list
/// envelope is built as text around them.
pub fn list_response(
    kind: &str,
    api_version: &str,
    list: crate::handler::EncodedList,
) -> Result<Response, ApiError> {
    let mut metadata = serde_json::Map::new();
    metadata.insert(
        "resourceVersion".into(),
        Value::from(list.resource_version.to_string()),
    );
    if let Some(token) = list.continue_token {
        metadata.insert("continue".into(), Value::from(token));
    }
    if let Some(remaining) = list.remaining_item_count {
        metadata.insert("remainingItemCount".into(), Value::from(remaining));
    }
    let head = serde_json::json!({"kind": kind, "apiVersion": api_version, "metadata": metadata});
    let mut head =
        serde_json::to_vec(&head).map_err(|e| ApiError::internal(format!("encoding list: {e}")))?;
    // `head` is an object: replace its closing brace with the items and close again.
    head.pop();
    head.extend_from_slice(b",\"items\":[");
    let mut response = Response::new(Body::from_stream(futures::stream::iter(
        ListChunks::new(head, list.items).map(Ok::<Bytes, std::convert::Infallible>),
    )));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// The body of a list response in chunks of about [`LIST_CHUNK`] bytes (KEP-5116): each item
/// is copied into the chunk being written, so the response is never built as one buffer.
struct ListChunks {
    next: Vec<u8>,
    items: std::vec::IntoIter<Bytes>,
    first: bool,
    done: bool,
}

/// The size a list response chunk is filled to.
const LIST_CHUNK: usize = 64 * 1024;

impl ListChunks {
    fn new(head: Vec<u8>, items: Vec<Bytes>) -> Self {
        ListChunks {
            next: head,
            items: items.into_iter(),
            first: true,
            done: false,
        }
    }
}

impl Iterator for ListChunks {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        for item in self.items.by_ref() {
            if !std::mem::take(&mut self.first) {
                self.next.push(b',');
            }
            self.next.extend_from_slice(&item);
            if self.next.len() >= LIST_CHUNK {
                let full = std::mem::replace(&mut self.next, Vec::with_capacity(LIST_CHUNK));
                return Some(Bytes::from(full));
            }
        }
        self.done = true;
        self.next.extend_from_slice(b"]}");
        Some(Bytes::from(std::mem::take(&mut self.next)))
    }
}

/// `response` with one `Warning: 299 - "<text>"` header per warning.
pub fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        let escaped = warning.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(value) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

/// The value of header `name` as text, `""` when absent or not text.
pub fn header_str(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
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
