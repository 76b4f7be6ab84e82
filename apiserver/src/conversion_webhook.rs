//! Conversion webhooks of CRDs with `spec.conversion.strategy: Webhook`: objects are sent to
//! the CRD's webhook over HTTPS as a `ConversionReview` (`apiextensions.k8s.io/v1`) and the
//! answer is checked as upstream's `webhookConverter` checks it
//! (`apiextensions-apiserver/pkg/apiserver/conversion/webhook_converter.go`).
//!
//! The scheme converts one object at a time through a synchronous [`Converter`], so each
//! conversion is one blocking HTTPS request (`ureq`) on the calling thread, bounded by the
//! webhook timeout; upstream sends a list's objects in one review.

use std::sync::Arc;
use std::time::Duration;

use apiextensions::CustomResourceConverter;
use scheme::{ConversionError, Converter};
use serde_json::{Map, Value, json};

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
        let mut response = agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .send(&body[..])
            .map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        let text = response
            .body_mut()
            .read_to_vec()
            .map_err(|e| failed(e.to_string()))?;
        if !status.is_success() {
            return Err(failed(format!(
                "the server responded with the status code {}",
                status.as_u16()
            )));
        }
        let answer: Value = serde_json::from_slice(&text)
            .map_err(|e| failed(format!("the response is not a ConversionReview: {e}")))?;
        let converted =
            check_answer(&answer, &uid, &desired, &object_meta(&review)).map_err(failed)?;
        Ok(converted)
    }
}

/// The metadata of the one object of a review, for [`check_answer`].
fn object_meta(review: &Value) -> Map<String, Value> {
    review
        .pointer("/request/objects/0/metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Upstream's checks of a `ConversionReview` answer: the same uid, a `Success` result, one
/// object of the desired apiVersion whose metadata changed only in labels and annotations.
fn check_answer(
    answer: &Value,
    uid: &str,
    desired: &str,
    sent_meta: &Map<String, Value>,
) -> Result<Value, String> {
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
        let mut restored = sent_meta.clone();
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
        let sent = json!({"name": "a", "namespace": "n", "uid": "u1", "labels": {"x": "1"}});
        let sent = sent.as_object().cloned().unwrap_or_default();
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
        let failed = json!({"response": {"uid": "r1", "result": {"status": "Failure", "message": "no way"}}});
        assert_eq!(
            check_answer(&failed, "r1", "g/v2", &sent).unwrap_err(),
            "no way"
        );
    }
}
