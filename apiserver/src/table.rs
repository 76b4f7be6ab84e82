//! `meta.k8s.io/v1` Table responses (`kubectl get`'s `Accept: ...;as=Table;g=meta.k8s.io`),
//! as upstream's `staging/src/k8s.io/apiserver/pkg/endpoints/handlers/response.go`
//! `transformResponseObject` renders them.

use axum::http::{HeaderMap, header};
use serde_json::{Value, json};

use crate::handler::{RequestContext, ResourceHandler};
use crate::query::Query;

/// Whether an Accept header asks for a `meta.k8s.io` Table.
pub(crate) fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let part = part.replace(' ', "");
        part.contains("as=Table") && part.contains("g=meta.k8s.io")
    })
}

/// What each row carries besides its cells (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IncludeObject {
    /// Nothing.
    None,
    /// The object's metadata as a `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
}

/// A request for a Table instead of objects.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TableRequest {
    include: IncludeObject,
}

impl TableRequest {
    /// The Table a get or list asks for, if its Accept header asks for one.
    pub(crate) fn from_request(headers: &HeaderMap, query: &Query) -> Option<Self> {
        if !wants_table(crate::http::header_str(headers, header::ACCEPT)) {
            return None;
        }
        let include = match query.get("includeObject") {
            "None" => IncludeObject::None,
            "Object" => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        };
        Some(TableRequest { include })
    }

    /// The Table of a watch event: rows carry metadata, as for a default list.
    pub(crate) fn for_watch() -> Self {
        TableRequest {
            include: IncludeObject::Metadata,
        }
    }

    /// A Table of `objects` (documents in the request version), with the list's
    /// resourceVersion and continue token when given.
    pub(crate) fn render(
        self,
        handler: &dyn ResourceHandler,
        ctx: &RequestContext,
        objects: &[Value],
        resource_version: Option<String>,
        continue_token: Option<String>,
    ) -> Value {
        let rows: Vec<Value> = objects
            .iter()
            .map(|object| self.row(handler.table_cells(ctx, object), object))
            .collect();
        let mut metadata = serde_json::Map::new();
        if let Some(rv) = resource_version {
            metadata.insert("resourceVersion".into(), Value::from(rv));
        }
        if let Some(token) = continue_token {
            metadata.insert("continue".into(), Value::from(token));
        }
        json!({
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": metadata,
            "columnDefinitions": handler.table_columns(),
            "rows": rows,
        })
    }

    /// One row: `cells` and what the row carries of `object` (a document in the request
    /// version).
    pub(crate) fn row(self, cells: Vec<Value>, object: &Value) -> Value {
        json!({"cells": cells, "object": self.row_object(object)})
    }

    fn row_object(self, object: &Value) -> Value {
        match self.include {
            IncludeObject::None => Value::Null,
            IncludeObject::Object => object.clone(),
            IncludeObject::Metadata => json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": object.get("metadata").cloned().unwrap_or(Value::Null),
            }),
        }
    }
}

/// The column definitions' key, which [`watch_event_table`] writes last.
const COLUMNS_KEY: &[u8] = b"\"columnDefinitions\":";

/// The end of a watch event's Table as [`watch_event_table`] writes it.
const NO_COLUMNS: &[u8] = b"\"columnDefinitions\":[]}";

/// The Table of one watch event as JSON text: `row` as its only row, at the object's
/// `resource_version` (as upstream's table convertors set it for a single object), with empty
/// column definitions written last so that [`with_columns`] can fill them in for a watch's
/// first event.
pub(crate) fn watch_event_table(
    resource_version: Option<&str>,
    row: &Value,
) -> Result<Vec<u8>, serde_json::Error> {
    let metadata = match resource_version {
        Some(rv) => json!({ "resourceVersion": rv }),
        None => json!({}),
    };
    let mut table = Vec::with_capacity(256);
    table.extend_from_slice(b"{\"kind\":\"Table\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":");
    serde_json::to_writer(&mut table, &metadata)?;
    table.extend_from_slice(b",\"rows\":[");
    serde_json::to_writer(&mut table, row)?;
    table.extend_from_slice(b"],");
    table.extend_from_slice(NO_COLUMNS);
    Ok(table)
}

/// `table` (from [`watch_event_table`]) with `columns` (JSON text) as its column definitions.
pub(crate) fn with_columns(table: &[u8], columns: &[u8]) -> Vec<u8> {
    let Some(head) = table.strip_suffix(NO_COLUMNS) else {
        return table.to_vec();
    };
    [head, COLUMNS_KEY, columns, b"}"].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }

    #[test]
    fn watch_event_tables_take_their_columns_when_asked() {
        let row = json!({"cells": ["a"], "object": null});
        let table = watch_event_table(Some("7"), &row).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&table).unwrap(),
            json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                   "metadata": {"resourceVersion": "7"}, "columnDefinitions": [], "rows": [row]})
        );
        let filled = with_columns(&table, br#"[{"name":"Name"}]"#);
        let filled: Value = serde_json::from_slice(&filled).unwrap();
        assert_eq!(filled["columnDefinitions"], json!([{"name": "Name"}]));
        assert_eq!(filled["rows"], json!([row]));
        let unversioned = watch_event_table(None, &row).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&unversioned).unwrap()["metadata"],
            json!({})
        );
        // Text in any other shape is left as it is.
        assert_eq!(with_columns(b"{}", b"[]"), b"{}");
    }
}
