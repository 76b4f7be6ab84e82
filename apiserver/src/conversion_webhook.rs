//! Conversion webhooks of CRDs with `spec.conversion.strategy: Webhook`: objects are sent to
//! the CRD's webhook over HTTPS as a `ConversionReview` (`apiextensions.k8s.io/v1`) and the
//! answer is checked as upstream's `webhookConverter` checks it
//! (`apiextensions-apiserver/pkg/apiserver/conversion/webhook_converter.go`).
//!
//! The scheme converts one object at a time through a synchronous [`Converter`], so each
//! conversion is one blocking HTTPS request (`ureq`), bounded by the webhook timeout; on a
//! multi-threaded Tokio runtime it runs in `block_in_place`, so the runtime moves its other
//! tasks to another worker meanwhile. Upstream sends a list's objects in one review.

use std::sync::Arc;
use std::time::Duration;

use apiextensions::CustomResourceConverter;
use scheme::{ConversionError, Converter};
use serde_json::{Value, json};

/// How long a webhook may take to answer (upstream's conversion webhook timeout).
const TIMEOUT: Duration = Duration::from_secs(30);

/// Where a CRD's conversion webhook listens and whom it is trusted as.
#[derive(Clone, Debug)]
pub struct WebhookTarget {
    /// `https://` URL of the webhook.
    pub url: String,
    /// PEM certificates to trust for it (`clientConfig.caBundle`); the Web PKI roots when
    /// empty.
    pub ca_bundle: Vec<u8>,
}

/// A CRD's converter that calls its conversion webhook between the storage version and the
/// others; pruning, defaulting and the storage-version hub are [`CustomResourceConverter`]'s.
pub struct WebhookConverter {
    inner: Arc<CustomResourceConverter>,
    group: String,
    kind: String,
    storage_version: String,
    url: String,
    agent: Result<ureq::Agent, String>,
}

impl WebhookConverter {
    /// The converter of a CRD of `group` and `kind` stored at `storage_version`, calling
    /// `target`.
    pub fn new(
        inner: Arc<CustomResourceConverter>,
        group: &str,
        kind: &str,
        storage_version: &str,
        target: &WebhookTarget,
    ) -> Self {
        WebhookConverter {
            inner,
            group: group.to_owned(),
            kind: kind.to_owned(),
            storage_version: storage_version.to_owned(),
            url: target.url.clone(),
            agent: agent(&target.ca_bundle),
        }
    }

    fn api_version(&self, version: &str) -> String {
        format!("{}/{version}", self.group)
    }

    /// Sends `object` to the webhook to be converted to `version`.
    fn call(&self, object: Value, version: &str) -> Result<Value, ConversionError> {
        let failed = |detail: String| {
            ConversionError::Failed(format!(
                "conversion webhook for {}/{}, Kind={} failed: {detail}",
                self.group, self.storage_version, self.kind
            ))
        };
        let agent = self.agent.as_ref().map_err(|e| failed(e.clone()))?;
        let uid = registry::system::new_uid();
        let desired = self.api_version(version);
        let review = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "ConversionReview",
            "request": {"uid": uid, "desiredAPIVersion": desired, "objects": [object]},
        });
        let body = serde_json::to_vec(&review).map_err(|e| failed(e.to_string()))?;
        let exchange = || -> Result<(ureq::http::StatusCode, Vec<u8>), String> {
            let mut response = agent
                .post(&self.url)
                .header("Content-Type", "application/json")
                .header("Accept", "application/json")
                .send(&body[..])
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let text = response
                .body_mut()
                .read_to_vec()
                .map_err(|e| e.to_string())?;
            Ok((status, text))
        };
        let (status, text) = off_the_runtime(exchange).map_err(failed)?;
        if !status.is_success() {
            return Err(failed(format!(
                "the server responded with the status code {}",
                status.as_u16()
            )));
        }
        let answer: Value = serde_json::from_slice(&text)
            .map_err(|e| failed(format!("the response is not a ConversionReview: {e}")))?;
        let sent = review
            .pointer("/request/objects/0")
            .cloned()
            .unwrap_or(Value::Null);
        let converted = check_answer(&answer, &uid, &desired, &sent).map_err(failed)?;
        Ok(converted)
    }
}

/// Runs a blocking call without stalling the Tokio runtime it is called on: through
/// `block_in_place` on a multi-threaded runtime (other tasks move to another worker), as is
/// elsewhere (a current-thread runtime cannot lend its thread).
fn off_the_runtime<T>(call: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(call)
        }
        _ => call(),
    }
}

/// Upstream's checks of a `ConversionReview` answer: the same uid, a `Success` result, one
/// object of the desired apiVersion and the `sent` object's kind, with metadata, of which
/// only labels and annotations may change.
fn check_answer(answer: &Value, uid: &str, desired: &str, sent: &Value) -> Result<Value, String> {
    let sent_meta = sent
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let sent_kind = sent.get("kind").and_then(Value::as_str);
    let response = answer
        .get("response")
        .ok_or("no response provided in the ConversionReview")?;
    if response.get("uid").and_then(Value::as_str) != Some(uid) {
        return Err(format!(
            "expected response uid {uid:?}, got {:?}",
            response
                .get("uid")
                .and_then(Value::as_str)
                .unwrap_or_default()
        ));
    }
    let status = response
        .pointer("/result/status")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if status != "Success" {
        let message = response
            .pointer("/result/message")
            .and_then(Value::as_str)
            .unwrap_or("conversion failed");
        return Err(message.to_owned());
    }
    let objects = response
        .get("convertedObjects")
        .and_then(Value::as_array)
        .ok_or("no convertedObjects in the response")?;
    let [converted] = objects.as_slice() else {
        return Err(format!(
            "expected 1 converted objects, got {}",
            objects.len()
        ));
    };
    let kind = converted.get("kind").and_then(Value::as_str);
    if sent_kind.is_some() && kind != sent_kind {
        return Err(format!(
            "invalid kind {:?} in the converted object, expected {:?}",
            kind.unwrap_or_default(),
            sent_kind.unwrap_or_default()
        ));
    }
    if converted.get("metadata").is_none_or(|m| !m.is_object()) {
        return Err("missing metadata in converted object".to_owned());
    }
    let api_version = converted.get("apiVersion").and_then(Value::as_str);
    if api_version != Some(desired) {
        return Err(format!(
            "invalid apiVersion {:?} in the converted object, expected {desired:?}",
            api_version.unwrap_or_default()
        ));
    }
    let mut converted = converted.clone();
    // Only labels and annotations may change; everything else of the metadata is the
    // server's (upstream's `restoreObjectMeta`).
    if let Some(Value::Object(meta)) = converted.get_mut("metadata") {
        let mut restored = sent_meta;
        for key in ["labels", "annotations"] {
            match meta.remove(key) {
                Some(value) => {
                    restored.insert(key.to_owned(), value);
                }
                None => {
                    restored.remove(key);
                }
            }
        }
        *meta = restored;
    }
    Ok(converted)
}

/// An HTTPS agent trusting `ca_bundle` (or the Web PKI roots when it is empty).
fn agent(ca_bundle: &[u8]) -> Result<ureq::Agent, String> {
    use ureq::tls::{Certificate, RootCerts, TlsConfig};
    let mut tls = TlsConfig::builder()
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()));
    if !ca_bundle.is_empty() {
        let certificates: Vec<Certificate<'static>> = ureq::tls::parse_pem(ca_bundle)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certificates.is_empty() {
            return Err("clientConfig.caBundle holds no PEM certificate".to_owned());
        }
        tls = tls.root_certs(RootCerts::Specific(Arc::new(certificates)));
    }
    let config = ureq::Agent::config_builder()
        .tls_config(tls.build())
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(false)
        .https_only(true)
        .build();
    Ok(ureq::Agent::new_with_config(config))
}

impl Converter for WebhookConverter {
    fn hub_version(&self) -> &str {
        self.inner.hub_version()
    }

    fn default(&self, version: &str, object: &mut Value) -> Result<(), ConversionError> {
        self.inner.default(version, object)
    }

    fn convert_to_hub(&self, version: &str, object: Value) -> Result<Value, ConversionError> {
        if version == self.storage_version {
            return self.inner.convert_to_hub(version, object);
        }
        let stored = self.call(object, &self.storage_version)?;
        self.inner.convert_to_hub(&self.storage_version, stored)
    }

    fn convert_from_hub(&self, version: &str, hub: Value) -> Result<Value, ConversionError> {
        let stored = self.inner.convert_from_hub(&self.storage_version, hub)?;
        if version == self.storage_version {
            return Ok(stored);
        }
        self.call(stored, version)
    }

    fn openapi_schema(&self, version: &str) -> Option<Value> {
        self.inner.openapi_schema(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_checked_as_upstream_checks_them() {
        let sent = json!({"apiVersion": "g/v1", "kind": "K",
            "metadata": {"name": "a", "namespace": "n", "uid": "u1", "labels": {"x": "1"}}});
        let good = json!({"response": {"uid": "r1", "result": {"status": "Success"},
            "convertedObjects": [{"apiVersion": "g/v2", "kind": "K",
                "metadata": {"name": "renamed", "labels": {"y": "2"}}, "spec": {"b": 1}}]}});
        let converted = check_answer(&good, "r1", "g/v2", &sent).unwrap_or_default();
        assert_eq!(
            converted["metadata"],
            json!({"name": "a", "namespace": "n", "uid": "u1", "labels": {"y": "2"}})
        );
        assert_eq!(converted["spec"]["b"], 1);
        assert!(check_answer(&good, "other", "g/v2", &sent).is_err());
        assert!(
            check_answer(&good, "r1", "g/v3", &sent)
                .unwrap_err()
                .contains("invalid apiVersion")
        );
        let other_kind = json!({"response": {"uid": "r1", "result": {"status": "Success"},
            "convertedObjects": [{"apiVersion": "g/v2", "kind": "Other", "metadata": {}}]}});
        assert!(
            check_answer(&other_kind, "r1", "g/v2", &sent)
                .unwrap_err()
                .contains("invalid kind")
        );
        let no_meta = json!({"response": {"uid": "r1", "result": {"status": "Success"},
            "convertedObjects": [{"apiVersion": "g/v2", "kind": "K"}]}});
        assert_eq!(
            check_answer(&no_meta, "r1", "g/v2", &sent).unwrap_err(),
            "missing metadata in converted object"
        );
        let failed = json!({"response": {"uid": "r1", "result": {"status": "Failure", "message": "no way"}}});
        assert_eq!(
            check_answer(&failed, "r1", "g/v2", &sent).unwrap_err(),
            "no way"
        );
    }
}
