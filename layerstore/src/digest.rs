//! Content digests and the layer identities built from them: [`Digest`],
//! [`DiffId`], [`ChainId`] and [`chain_id`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use crate::error::Error;

/// A sha256 content digest, written `sha256:<64 lowercase hex>`.
///
/// ```
/// use dunnage_layerstore::Digest;
/// let d = Digest::sha256_of(&[0u8; 1024]);
/// assert_eq!(d.to_string(), "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef");
/// assert_eq!(d, d.to_string().parse().unwrap());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest whose hash bytes are `bytes`.
    pub fn from_bytes(bytes: [u8; 32]) -> Digest {
        Digest(bytes)
    }

    /// The sha256 of `data`.
    pub fn sha256_of(data: &[u8]) -> Digest {
        Digest(Sha256::digest(data).into())
    }

    /// Parse the 64 lowercase hex characters of a sha256 (no `sha256:` prefix).
    pub fn from_hex(hex_text: &str) -> Result<Digest, Error> {
        let invalid = |why| Error::InvalidDigest {
            text: hex_text.to_owned(),
            why,
        };
        if hex_text.len() != 64 {
            return Err(invalid("a sha256 is 64 hex characters"));
        }
        if !hex_text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(invalid("only lowercase hex characters are allowed"));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_text, &mut bytes).map_err(|_| invalid("not hex"))?;
        Ok(Digest(bytes))
    }

    /// The algorithm name: always `sha256`.
    pub fn algorithm(&self) -> &'static str {
        "sha256"
    }

    /// The 64 lowercase hex characters (no prefix).
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The raw hash bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Digest, Error> {
        match s.split_once(':') {
            Some(("sha256", hex_text)) => Digest::from_hex(hex_text).map_err(|e| match e {
                Error::InvalidDigest { why, .. } => Error::InvalidDigest {
                    text: s.to_owned(),
                    why,
                },
                other => other,
            }),
            Some(_) => Err(Error::InvalidDigest {
                text: s.to_owned(),
                why: "only the sha256 algorithm is supported",
            }),
            None => Err(Error::InvalidDigest {
                text: s.to_owned(),
                why: "missing the `sha256:` prefix",
            }),
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

macro_rules! digest_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Digest);

        impl $name {
            /// The 64 lowercase hex characters (no prefix).
            pub fn hex(&self) -> String {
                self.0.hex()
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<$name, Error> {
                s.parse().map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl From<Digest> for $name {
            fn from(d: Digest) -> $name {
                $name(d)
            }
        }
    };
}

digest_newtype!(
    /// A layer's diffID: the sha256 of its whole uncompressed tar stream.
    DiffId
);
digest_newtype!(
    /// A layer's chainID: its identity together with all its parents (see [`chain_id`]).
    ChainId
);

/// The chainID of a stack of layers given base first; `None` for an empty list.
///
/// chainID(L0) = diffID(L0); chainID(L0..Ln) = sha256 of
/// `"<chainID(L0..Ln-1)> <diffID(Ln)>"`.
///
/// ```
/// use dunnage_layerstore::{chain_id, DiffId};
/// let empty: DiffId = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef".parse().unwrap();
/// let chain = chain_id(&[empty, empty]).unwrap();
/// assert_eq!(chain.to_string(), "sha256:170b376f64fb30995c140276be3d71dfb256b308d86183ca3b22aa93a79ad548");
/// ```
pub fn chain_id(diff_ids: &[DiffId]) -> Option<ChainId> {
    let (first, rest) = diff_ids.split_first()?;
    Some(rest.iter().fold(ChainId(first.0), |parent, diff| {
        child_chain_id(Some(&parent), diff)
    }))
}

/// The chainID of a layer `diff` on top of the chain `parent`.
pub fn child_chain_id(parent: Option<&ChainId>, diff: &DiffId) -> ChainId {
    match parent {
        None => ChainId(diff.0),
        Some(p) => ChainId(Digest::sha256_of(format!("{p} {diff}").as_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

    #[test]
    fn empty_tar_diff_id_matches_reference_vector() {
        assert_eq!(Digest::sha256_of(&[0u8; 1024]).to_string(), EMPTY);
    }

    #[test]
    fn chain_of_two_empty_layers_matches_reference_vector() {
        let e: DiffId = EMPTY.parse().unwrap();
        assert_eq!(chain_id(&[e]).unwrap(), ChainId(e.0));
        assert_eq!(
            chain_id(&[e, e]).unwrap().to_string(),
            "sha256:170b376f64fb30995c140276be3d71dfb256b308d86183ca3b22aa93a79ad548"
        );
        assert_eq!(chain_id(&[]), None);
    }

    #[test]
    fn malformed_digests_are_rejected() {
        for bad in [
            "",
            "sha256:",
            "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef",
            "sha512:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef",
            "sha256:5F70BF18A086007016E948B04AED3B82103A36BEA41755B6CDDFAF10ACE3C6EF",
            "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6e",
            "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6eff",
            "sha256:zf70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef",
            "sha256: 5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6e",
            "sha256:é5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c",
        ] {
            assert!(
                matches!(bad.parse::<Digest>(), Err(Error::InvalidDigest { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn digests_serialize_as_their_string() {
        let d: ChainId = EMPTY.parse().unwrap();
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{EMPTY}\""));
        assert_eq!(serde_json::from_str::<ChainId>(&json).unwrap(), d);
        assert!(serde_json::from_str::<ChainId>("\"sha256:00\"").is_err());
    }
}
