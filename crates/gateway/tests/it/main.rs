//! The integration tests, as one test binary: each module is one concern
//! (what used to be a test binary of its own), sharing the harness in
//! [`common`]. One binary links tokio, rusqlite and ed25519 once.

mod common;

mod admin_metrics;
mod admission_properties;
mod admission_table;
mod auth_explain;
mod cli_auth_log;
mod cli_devices;
mod cli_first_hour;
mod cluster;
mod decide_apply_race;
mod device_proof_vectors;
mod devices;
mod devices_in_memory;
mod edge;
mod events;
mod field_reports;
mod fuzz_corpus;
mod handshake;
mod hardening_edge;
mod hardening_fields;
mod hardening_lockouts;
mod hardening_payload;
mod hardening_presence;
mod interop_client;
mod interop_openclaw;
mod limits;
mod listeners;
mod method_table;
mod methods;
mod nodes;
mod offline_changes;
mod openclaw_config_keys;
mod openclaw_upstream;
mod packaging;
mod peer_uid;
mod pg_store;
mod port_squatting;
mod proxy_users;
mod reload;
mod reload_binary;
mod resource_limits;
mod security_audit;
mod services;
mod store_crash;
mod store_faults;
mod thread_per_core;
mod upstream_faults;
mod upstream_faults_openclaw;
mod upstream_http;
mod upstream_real_clients;
mod upstream_sessions;
mod wire_defects;
