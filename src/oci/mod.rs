//! OCI bundles: config.json in and out.
