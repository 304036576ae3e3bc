//! # dunnage
//!
//! Linux container building blocks, as independent crates, re-exported here:
//!
//! | module | crate | what it is |
//! |---|---|---|
//! | [`namespaces`] | `dunnage-namespaces` | kinds of namespace, identity, unshare, setns, spawning in new namespaces |
//! | [`cgroups`] | `dunnage-cgroups` | cgroup v1, v2 and hybrid hierarchies, resources, stats, freeze, kill |
//! | [`overlay`] | `dunnage-overlay` | overlay mounts, whiteouts, layer apply and diff, the overlay2 driver |
//! | [`layerstore`] | `dunnage-layerstore` | digests, chainIDs, tar-split, the Docker-compatible layerdb |
//! | [`image`] | `dunnage-image` | image configs, the imagedb, tags, docker save/load, OCI layouts |
//! | [`network`] | `dunnage-network` | bridge networks: veth pairs, IPAM, nftables NAT and published ports |
//!
//! and composed into containers: [`container`] (the [`Container`] builder,
//! [`ContainerStore`], [`ContainerHandle`]), [`profile`] (Docker's security
//! profile as a value: [`profile::Profile::docker`], `privileged`,
//! `unconfined`) and [`oci`] (bundles: config.json converted to a
//! [`Container`], and a profile written out as a bundle runc and crun run).
//!
//! ```
//! // Each crate is reachable through the facade.
//! use dunnage::{cgroups, image, layerstore, namespaces, overlay};
//! ```

pub mod container;
pub mod oci;
pub mod profile;

pub use container::{Container, ContainerHandle, ContainerStore};
pub use dunnage_cgroups as cgroups;
pub use dunnage_image as image;
pub use dunnage_layerstore as layerstore;
pub use dunnage_namespaces as namespaces;
pub use dunnage_network as network;
pub use dunnage_overlay as overlay;
