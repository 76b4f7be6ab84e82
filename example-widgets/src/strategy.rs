//! The Store strategies of `widgets`: what the generic [`Store`] does with a `v1` Widget.
//!
//! - [`WidgetStrategy`] (the main resource): namespaced; generation 1 on create and bumped
//!   only when the spec changes (the Store's generation rule: anything outside `metadata` and
//!   `status`); `status` reset on create and carried over from the stored object on update, so
//!   only the `status` subresource writes it; DNS-subdomain names; [`validate`](super::validate)
//!   on create and update (422 Invalid with one cause per field error); neither unconditional
//!   updates nor create-on-update (as custom resources); table columns Name, Display Name,
//!   Phase, Age.
//! - [`WidgetStatusStrategy`] (`widgets/status`): the Store's [`StatusStrategy`] over the main
//!   strategy: the spec is reset to the stored one, the rest validates as the main resource.
//!
//! [`widget_store`] builds the `Store<v1::Widget>` with both.

use std::sync::Arc;

use serde_json::Value;

use super::v1::{Widget, WidgetStatus};
use super::{KIND, PLURAL};
use apimachinery::selector::{SelectorError, known_field_conversion};
use apimachinery::status::{FieldError, GroupResource};
use object_storage::Storage;
use registry::strategy::{TableColumn, age, age_column, name_column};
use registry::validation::{name_is_dns_subdomain, validate_object_meta};
use registry::{StatusStrategy, Store, Strategy};

/// The strategy of the `widgets` main resource (see the [module docs](self)).
#[derive(Clone, Copy, Debug, Default)]
pub struct WidgetStrategy;

/// The strategy of `widgets/status`: status writes keep the stored spec.
pub type WidgetStatusStrategy = StatusStrategy<WidgetStrategy>;

/// The `widgets/status` strategy.
pub fn widget_status_strategy() -> WidgetStatusStrategy {
    StatusStrategy::new(WidgetStrategy)
}

fn validate_widget(widget: &Widget) -> Vec<FieldError> {
    let mut errors = validate_object_meta(&widget.metadata, true, name_is_dns_subdomain);
    errors.extend(super::validate(widget));
    errors
}

impl Strategy<Widget> for WidgetStrategy {
    fn namespace_scoped(&self) -> bool {
        true
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    /// Status is the controllers': a created Widget starts without one.
    fn prepare_for_create(&self, object: &mut Widget) {
        object.status = WidgetStatus::default();
    }

    /// Main-resource writes keep the stored status.
    fn prepare_for_update(&self, new: &mut Widget, old: &Widget) {
        new.status = old.status.clone();
    }

    fn validate(&self, object: &Widget) -> Vec<FieldError> {
        validate_widget(object)
    }

    fn validate_update(&self, new: &Widget, _old: &Widget) -> Vec<FieldError> {
        validate_widget(new)
    }

    /// As for custom resources: `metadata.name` and `metadata.namespace` only, with the
    /// `field label not supported` message of Kubernetes' custom resource converter.
    fn convert_field_label(
        &self,
        label: &str,
        value: &str,
    ) -> Result<(String, String), SelectorError> {
        known_field_conversion(&["metadata.name", "metadata.namespace"], label, value)
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        vec![
            name_column(),
            TableColumn::new(
                "Display Name",
                "string",
                "",
                "The display name of the Widget (spec.displayName).",
            ),
            TableColumn::new(
                "Phase",
                "string",
                "",
                "The lifecycle phase of the Widget (status.phase): Pending or Running.",
            ),
            age_column(),
        ]
    }

    fn table_cells(&self, object: &Widget) -> Vec<Value> {
        vec![
            Value::from(object.metadata.name.clone().unwrap_or_default()),
            // Missing values are null, which kubectl prints as <none> (as for custom resources).
            object
                .spec
                .display_name
                .clone()
                .map_or(Value::Null, Value::from),
            object.status.phase.clone().map_or(Value::Null, Value::from),
            Value::from(age(object)),
        ]
    }
}

/// The `widgets.apps.example.io` Store over `storage` (which keeps `v1` Widgets, the storage
/// version): [`WidgetStrategy`] for the main resource and [`WidgetStatusStrategy`] for
/// `status`. Requests in `v1beta1` are converted with the [`Scheme`](scheme::Scheme)
/// before and after (`decode_to_storage`, `convert`).
pub fn widget_store(storage: Storage<Widget>) -> Store<Widget> {
    Store::new(
        storage,
        GroupResource::new(super::GROUP, PLURAL),
        KIND,
        Arc::new(WidgetStrategy),
    )
    .with_status_strategy(Arc::new(widget_status_strategy()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::WidgetSpec;

    fn widget(display: &str, phase: Option<&str>) -> Widget {
        Widget {
            metadata: apimachinery::object::ObjectMeta {
                name: Some("w".to_owned()),
                namespace: Some("ns".to_owned()),
                ..Default::default()
            },
            spec: WidgetSpec {
                display_name: Some(display.to_owned()),
                description: None,
            },
            status: WidgetStatus {
                phase: phase.map(str::to_owned),
                ..Default::default()
            },
        }
    }

    #[test]
    fn main_resource_resets_status() {
        let mut created = widget("A", Some("Running"));
        WidgetStrategy.prepare_for_create(&mut created);
        assert_eq!(created.status, WidgetStatus::default());
        let old = widget("A", Some("Pending"));
        let mut new = widget("B", Some("Running"));
        WidgetStrategy.prepare_for_update(&mut new, &old);
        assert_eq!(new.status.phase.as_deref(), Some("Pending"));
        assert_eq!(new.spec.display_name.as_deref(), Some("B"));
    }

    #[test]
    fn status_strategy_resets_spec() {
        let old = widget("A", Some("Pending"));
        let mut new = widget("B", Some("Running"));
        widget_status_strategy().prepare_for_update(&mut new, &old);
        assert_eq!(new.spec.display_name.as_deref(), Some("A"));
        assert_eq!(new.status.phase.as_deref(), Some("Running"));
    }

    #[test]
    fn table_cells_follow_columns() {
        let w = widget("Shown", Some("Running"));
        let columns = WidgetStrategy.table_columns();
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["Name", "Display Name", "Phase", "Age"]);
        let cells = WidgetStrategy.table_cells(&w);
        assert_eq!(cells.len(), 4);
        assert_eq!(cells[1], Value::from("Shown"));
        assert_eq!(cells[2], Value::from("Running"));
    }
}
