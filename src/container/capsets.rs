//! [`CapabilitySets`]: the five capability sets of a container's process,
//! as an OCI `process.capabilities` gives them, and docker's arithmetic
//! of `--cap-add`/`--cap-drop` on them.

use serde::{Deserialize, Serialize};

use crate::container::error::Result;

/// The five capability sets of a process, as names `CAP_...`.
///
/// Docker gives bounding = effective = permitted and nothing inheritable
/// or ambient ([`CapabilitySets::uniform`]); an OCI config may give each
/// set on its own. Stored specs written before the sets were separate
/// hold one list: it reads as [`CapabilitySets::uniform`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Stored")]
pub struct CapabilitySets {
    /// `CapBnd`: what the process and its children can ever get.
    pub bounding: Vec<String>,
    /// `CapEff`: within `permitted`.
    pub effective: Vec<String>,
    /// `CapPrm`.
    pub permitted: Vec<String>,
    /// `CapInh`.
    pub inheritable: Vec<String>,
    /// `CapAmb`: within `permitted` and `inheritable`.
    pub ambient: Vec<String>,
}

/// The stored forms: the old single list or the five sets.
#[derive(Deserialize)]
#[serde(untagged)]
enum Stored {
    Uniform(Vec<String>),
    Sets {
        #[serde(default)]
        bounding: Vec<String>,
        #[serde(default)]
        effective: Vec<String>,
        #[serde(default)]
        permitted: Vec<String>,
        #[serde(default)]
        inheritable: Vec<String>,
        #[serde(default)]
        ambient: Vec<String>,
    },
}

impl From<Stored> for CapabilitySets {
    fn from(s: Stored) -> CapabilitySets {
        match s {
            Stored::Uniform(list) => CapabilitySets::uniform(list),
            Stored::Sets {
                bounding,
                effective,
                permitted,
                inheritable,
                ambient,
            } => CapabilitySets {
                bounding,
                effective,
                permitted,
                inheritable,
                ambient,
            },
        }
    }
}

impl CapabilitySets {
    /// `names` in bounding, effective and permitted; nothing inheritable
    /// or ambient (what docker gives a container).
    pub fn uniform(names: Vec<String>) -> CapabilitySets {
        CapabilitySets {
            bounding: names.clone(),
            effective: names.clone(),
            permitted: names,
            inheritable: Vec::new(),
            ambient: Vec::new(),
        }
    }

    /// The sets as the kernel takes them. An unknown name is an error.
    pub fn to_kernel(&self) -> Result<dunnage_namespaces::Capabilities> {
        use dunnage_namespaces::CapSet;
        Ok(dunnage_namespaces::Capabilities {
            bounding: CapSet::parse(&self.bounding)?,
            effective: CapSet::parse(&self.effective)?,
            permitted: CapSet::parse(&self.permitted)?,
            inheritable: CapSet::parse(&self.inheritable)?,
            ambient: CapSet::parse(&self.ambient)?,
        })
    }

    /// Docker's `--cap-drop`/`--cap-add` on bounding, effective and
    /// permitted (`ALL` in `drops` empties them first, `ALL` in `adds`
    /// gives `all`; an added name wins over a dropped one). Dropped names
    /// also leave the ambient set. Names are normalised `CAP_X`.
    pub(crate) fn edit(&mut self, adds: &[String], drops: &[String], all: &[String]) {
        let drop_all = drops.iter().any(|d| d == "ALL");
        let dropped = |cap: &String| (drop_all || drops.contains(cap)) && !adds.contains(cap);
        let edit_one = |set: &mut Vec<String>| {
            if adds.iter().any(|a| a == "ALL") {
                *set = all.to_vec();
            } else {
                if drop_all {
                    set.clear();
                }
                for a in adds {
                    if !set.contains(a) {
                        set.push(a.clone());
                    }
                }
            }
            set.retain(|cap| !dropped(cap));
        };
        edit_one(&mut self.bounding);
        edit_one(&mut self.effective);
        edit_one(&mut self.permitted);
        self.ambient.retain(|cap| !dropped(cap));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn old_single_list_reads_as_uniform() {
        let old: CapabilitySets = serde_json::from_str(r#"["CAP_KILL","CAP_CHOWN"]"#).unwrap();
        assert_eq!(
            old,
            CapabilitySets::uniform(names(&["CAP_KILL", "CAP_CHOWN"]))
        );
        let new: CapabilitySets =
            serde_json::from_str(r#"{"bounding":["CAP_KILL"],"ambient":["CAP_KILL"]}"#).unwrap();
        assert_eq!(new.bounding, names(&["CAP_KILL"]));
        assert_eq!(new.ambient, names(&["CAP_KILL"]));
        assert!(new.effective.is_empty());
        let back: CapabilitySets =
            serde_json::from_str(&serde_json::to_string(&new).unwrap()).unwrap();
        assert_eq!(back, new);
        for bad in ["5", r#"[5]"#, r#"{"bounding":"CAP_KILL"}"#, "null"] {
            assert!(
                serde_json::from_str::<CapabilitySets>(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn edit_as_docker() {
        let all = names(&["CAP_A", "CAP_B", "CAP_C"]);
        let mut s = CapabilitySets::uniform(names(&["CAP_A", "CAP_B"]));
        s.inheritable = names(&["CAP_A"]);
        s.ambient = names(&["CAP_A"]);
        s.edit(&names(&["CAP_C"]), &names(&["CAP_A"]), &all);
        assert_eq!(s.bounding, names(&["CAP_B", "CAP_C"]));
        assert_eq!(s.effective, s.bounding);
        assert_eq!(s.permitted, s.bounding);
        assert_eq!(s.inheritable, names(&["CAP_A"]));
        assert!(s.ambient.is_empty());
        let mut s = CapabilitySets::uniform(names(&["CAP_A"]));
        s.edit(&names(&["CAP_B"]), &names(&["ALL"]), &all);
        assert_eq!(s.bounding, names(&["CAP_B"]));
        let mut s = CapabilitySets::default();
        s.edit(&names(&["ALL"]), &[], &all);
        assert_eq!(s.permitted, all);
    }

    #[test]
    fn unknown_name_is_an_error() {
        let s = CapabilitySets::uniform(names(&["CAP_NOPE"]));
        assert!(s.to_kernel().is_err());
        let k = CapabilitySets::uniform(names(&["CAP_KILL"]))
            .to_kernel()
            .unwrap();
        assert!(k.inheritable.0 == 0 && k.bounding.0 == 1 << 5);
    }
}
