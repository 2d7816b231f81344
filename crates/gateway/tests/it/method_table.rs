//! The method → scope table shipped in the protocol crate is the schema's,
//! extracted, not retyped. `UPDATE_METHOD_SCOPES=1` rewrites it from the schema.

use std::collections::BTreeMap;

#[test]
fn shipped_table_equals_the_schema() {
    let from_schema: BTreeMap<String, String> = crate::common::schema::method_scopes().into_iter().collect();
    let shipped: BTreeMap<String, String> =
        serde_json::from_str(clawgate_protocol::methods::METHOD_SCOPES_JSON).expect("shipped table parses");
    if std::env::var_os("UPDATE_METHOD_SCOPES").is_some() && shipped != from_schema {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../protocol/src/method_scopes.json");
        let text = serde_json::to_string_pretty(&from_schema).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
        panic!("rewrote {}; rebuild and rerun", path.display());
    }
    assert_eq!(shipped.len(), from_schema.len());
    assert!(
        shipped == from_schema,
        "method_scopes.json differs from protocol.schema.json: rerun with UPDATE_METHOD_SCOPES=1"
    );
}
