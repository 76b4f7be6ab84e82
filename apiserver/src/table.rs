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
            .map(|object| {
                json!({
                    "cells": handler.table_cells(ctx, object),
                    "object": self.row_object(object),
                })
            })
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
}
