//! Small constructors shared by the storage modules.

use std::collections::BTreeMap;

use crate::Codec;
use crate::options::INITIAL_EVENTS_END_ANNOTATION;
use apimachinery::object::Object;

/// An empty object carrying only `revision` (and the initial-events-end annotation when `end`).
pub(crate) fn bookmark<K: Object>(codec: &Codec<K>, revision: u64, end: bool) -> K {
    let mut object = codec.new_object();
    Codec::<K>::set_resource_version(&mut object, revision);
    if end {
        object.meta_mut().annotations = Some(BTreeMap::from([(
            INITIAL_EVENTS_END_ANNOTATION.to_owned(),
            "true".to_owned(),
        )]));
    }
    object
}
