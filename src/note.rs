//! Signed notes as C2SP `signed-note` defines them (the format of Go's
//! `golang.org/x/mod/sumdb/note`), with Ed25519 keys: what a checkpoint of the archive's
//! Merkle tree is signed as (issue 29), so that any implementation of the standard, or a
//! short script, can check it.
//!
//! - A key's name holds no `+` and no space; its id is the first 4 bytes of
//!   SHA-256(name || `\n` || 0x01 || public key), written as 8 hex digits.
//! - The verifier key is `name+id+base64(0x01 || public key)`; the private key,
//!   `PRIVATE+KEY+name+id+base64(0x01 || 32-byte seed)`.
//! - A note is its text (lines, each ending in a newline), an empty line, and one line
//!   per signature: `— name base64(id || signature of the text)`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use sha2::{Digest, Sha256};

/// The algorithm byte of Ed25519 keys.
const ED25519_ALG: u8 = 0x01;

/// What went wrong with a key or a note, in words for a message.
pub type Why = String;

fn key_id(name: &str, public: &[u8]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519_ALG]);
    h.update(public);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

fn valid_name(name: &str) -> Result<(), Why> {
    if name.is_empty() || name.contains(|c: char| c == '+' || c.is_whitespace()) {
        return Err(format!(
            "a key's name must be non-empty, without `+` or spaces: {name:?}"
        ));
    }
    Ok(())
}

/// A key that signs notes. Its `Debug` shows the name and id alone.
pub struct Signer {
    name: String,
    id: u32,
    pair: Ed25519KeyPair,
}

/// A key that checks notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    pub name: String,
    pub id: u32,
    public: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({}+{:08x})", self.name, self.id)
    }
}

impl Signer {
    fn from_seed(name: &str, seed: &[u8]) -> Result<Signer, Why> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|e| format!("not an Ed25519 key: {e}"))?;
        let id = key_id(name, pair.public_key().as_ref());
        Ok(Signer {
            name: name.to_owned(),
            id,
            pair,
        })
    }

    /// Read the private key text (`PRIVATE+KEY+name+id+base64`).
    pub fn from_text(text: &str) -> Result<Signer, Why> {
        let bad = || "not a private key (`PRIVATE+KEY+name+id+…`)".to_owned();
        let rest = text.trim().strip_prefix("PRIVATE+KEY+").ok_or_else(bad)?;
        let (name, id, key) = split_key(rest).ok_or_else(bad)?;
        let key = B64.decode(key).map_err(|_| bad())?;
        let [ED25519_ALG, seed @ ..] = key.as_slice() else {
            return Err("not an Ed25519 key (algorithm byte 0x01)".to_owned());
        };
        if seed.len() != 32 {
            return Err(bad());
        }
        let signer = Signer::from_seed(name, seed)?;
        if signer.id != id {
            return Err("the key's id does not match its name and key".to_owned());
        }
        Ok(signer)
    }

    /// The private key text of this key, made from `seed`, to keep in a file only its
    /// owner reads.
    fn private_text(&self, seed: &[u8; 32]) -> String {
        let mut key = vec![ED25519_ALG];
        key.extend_from_slice(seed);
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.id,
            B64.encode(key)
        )
    }

    /// The key's name (a checkpoint's origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifier(&self) -> Verifier {
        Verifier {
            name: self.name.clone(),
            id: self.id,
            public: self.pair.public_key().as_ref().to_vec(),
        }
    }

    /// The note of `text` (lines ending in a newline) with this key's signature.
    pub fn sign(&self, text: &str) -> Result<String, Why> {
        check_text(text)?;
        let sig = self.pair.sign(text.as_bytes());
        let mut blob = self.id.to_be_bytes().to_vec();
        blob.extend_from_slice(sig.as_ref());
        Ok(format!(
            "{text}\n\u{2014} {} {}\n",
            self.name,
            B64.encode(blob)
        ))
    }
}

/// A new key named `name`: the private key text and the verifier key text.
pub fn generate(name: &str) -> Result<(String, String), Why> {
    valid_name(name)?;
    let mut seed = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
        .map_err(|_| "the system's random source failed".to_owned())?;
    let signer = Signer::from_seed(name, &seed)?;
    Ok((signer.private_text(&seed), signer.verifier().to_string()))
}

/// `name+id+key` -> (name, id, key).
fn split_key(text: &str) -> Option<(&str, u32, &str)> {
    let mut parts = text.splitn(3, '+');
    let (name, id, key) = (parts.next()?, parts.next()?, parts.next()?);
    valid_name(name).ok()?;
    if id.len() != 8 {
        return None;
    }
    Some((name, u32::from_str_radix(id, 16).ok()?, key))
}

fn check_text(text: &str) -> Result<(), Why> {
    if !text.ends_with('\n') || text.contains("\n\n") || text.starts_with('\n') {
        return Err("a note's text is lines each ending in a newline, none empty".to_owned());
    }
    Ok(())
}

impl std::fmt::Display for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut key = vec![ED25519_ALG];
        key.extend_from_slice(&self.public);
        write!(f, "{}+{:08x}+{}", self.name, self.id, B64.encode(key))
    }
}

impl Verifier {
    /// Read a verifier key (`name+id+base64`).
    pub fn from_text(text: &str) -> Result<Verifier, Why> {
        let bad = || "not a verifier key (`name+id+base64`)".to_owned();
        let (name, id, key) = split_key(text.trim()).ok_or_else(bad)?;
        let key = B64.decode(key).map_err(|_| bad())?;
        let [ED25519_ALG, public @ ..] = key.as_slice() else {
            return Err("not an Ed25519 key (algorithm byte 0x01)".to_owned());
        };
        if public.len() != 32 {
            return Err(bad());
        }
        if key_id(name, public) != id {
            return Err("the key's id does not match its name and key".to_owned());
        }
        Ok(Verifier {
            name: name.to_owned(),
            id,
            public: public.to_vec(),
        })
    }

    /// The text of `note` when this key signed it.
    pub fn verify<'n>(&self, note: &'n str) -> Result<&'n str, Why> {
        let split = note
            .rfind("\n\n")
            .ok_or("a note has its text, an empty line, then its signatures")?;
        let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
        check_text(text)?;
        for line in sigs.lines() {
            let Some(rest) = line.strip_prefix("\u{2014} ") else {
                return Err(format!("not a signature line: {line:?}"));
            };
            let Some((name, blob)) = rest.split_once(' ') else {
                return Err(format!("not a signature line: {line:?}"));
            };
            let blob = B64
                .decode(blob)
                .map_err(|_| format!("a signature that is not base64: {line:?}"))?;
            if name != self.name || blob.len() != 68 || blob[..4] != self.id.to_be_bytes() {
                continue;
            }
            return UnparsedPublicKey::new(&ED25519, &self.public)
                .verify(text.as_bytes(), &blob[4..])
                .map(|()| text)
                .map_err(|_| format!("the signature of {} does not match the note", self.name));
        }
        Err(format!("the note has no signature by {}", self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of Go's `golang.org/x/mod/sumdb/note` documentation: its verifier key
    /// and the note it signed.
    const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const NOTE: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn the_standards_example_verifies() {
        let v = Verifier::from_text(VKEY).unwrap();
        assert_eq!(v.to_string(), VKEY);
        assert_eq!(v.verify(NOTE).unwrap(), TEXT);
    }

    #[test]
    fn a_generated_key_signs_notes_its_verifier_key_checks() {
        let (private, public) = generate("auditq-test").unwrap();
        assert!(private.starts_with("PRIVATE+KEY+auditq-test+"));
        let signer = Signer::from_text(&private).unwrap();
        assert_eq!(signer.verifier().to_string(), public);
        let signed = signer.sign(TEXT).unwrap();
        assert!(signed.starts_with(TEXT) && signed.contains("\n\n\u{2014} auditq-test "));
        assert_eq!(
            Verifier::from_text(&public)
                .unwrap()
                .verify(&signed)
                .unwrap(),
            TEXT
        );
    }

    #[test]
    fn a_changed_note_or_another_key_is_refused() {
        let v = Verifier::from_text(VKEY).unwrap();
        assert!(v.verify(&NOTE.replacen("problem,", "problem;", 1)).is_err());
        let (private, _) = generate("auditq-test").unwrap();
        let signed = Signer::from_text(&private).unwrap().sign(TEXT).unwrap();
        assert!(v.verify(&signed).unwrap_err().contains("no signature by"));
        assert!(Signer::from_text(&private.replacen("auditq-test", "other", 1)).is_err());
        // A key whose id does not match.
        assert!(Verifier::from_text(&VKEY.replace("c74f20a3", "c74f20a4")).is_err());
        assert!(generate("bad name").is_err());
    }
}
