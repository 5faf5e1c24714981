//! Who may connect: trust (the demo), or SCRAM-SHA-256 passwords.
//!
//! `spandb start --sql-users FILE` makes the gateway ask every client for
//! a password, checked by SCRAM-SHA-256 (RFC 5802/7677, what PostgreSQL
//! uses by default): the password never crosses the wire and the server
//! keeps only a verifier. The file is TOML:
//!
//! ```toml
//! [[user]]
//! name = "alice"
//! # PostgreSQL's verifier format (`SELECT rolpassword FROM pg_authid`):
//! password = "SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>"
//!
//! [[user]]
//! name = "bob"
//! password = "a cleartext password"   # hashed when the server starts
//! ```
//!
//! ```text
//!   Startup(user) ──> AuthenticationSASL [SCRAM-SHA-256]
//!   SASLInitialResponse(client-first) ──> SASLContinue(server-first: nonce, salt, iterations)
//!   SASLResponse(client-final: proof) ──> SASLFinal(server signature), AuthenticationOk, ...
//!                                    or FATAL 28P01 password authentication failed
//! ```
//!
//! An unknown user goes through the same exchange against a random
//! verifier and fails the same way, so the answer does not say which
//! users exist. The SCRAM arithmetic is pgwire's.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use pgwire::api::auth::sasl::scram::{gen_salted_password, ScramSecret};

/// Iterations for verifiers made from cleartext passwords (PostgreSQL's
/// default `scram_iterations`).
const ITERATIONS: usize = 4096;

/// One user's verifier: what SCRAM needs, not the password.
#[derive(Clone)]
struct Verifier {
    salt: Vec<u8>,
    iterations: usize,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl Verifier {
    /// From PostgreSQL's `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
    fn parse(text: &str) -> anyhow::Result<Verifier> {
        let bad = || {
            anyhow::anyhow!("not a SCRAM-SHA-256 verifier (SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)")
        };
        let rest = text.strip_prefix("SCRAM-SHA-256$").ok_or_else(bad)?;
        let (params, keys) = rest.split_once('$').ok_or_else(bad)?;
        let (iterations, salt) = params.split_once(':').ok_or_else(bad)?;
        let (stored, server) = keys.split_once(':').ok_or_else(bad)?;
        let iterations: usize = iterations.parse().map_err(|_| bad())?;
        if iterations == 0 {
            bail!("a SCRAM verifier needs at least one iteration");
        }
        let decode = |s: &str| STANDARD.decode(s).map_err(|_| bad());
        let (stored_key, server_key) = (decode(stored)?, decode(server)?);
        if stored_key.len() != 32 || server_key.len() != 32 {
            return Err(bad());
        }
        Ok(Verifier { salt: decode(salt)?, iterations, stored_key, server_key })
    }

    /// From a cleartext password, with a fresh random salt.
    fn from_password(password: &str) -> Verifier {
        let salt: [u8; 16] = rand::random();
        let salted = gen_salted_password(password, &salt, ITERATIONS);
        match ScramSecret::verifier_from_salted_password(salt.to_vec(), salted, ITERATIONS) {
            ScramSecret::Verifier { salt, iterations, stored_key, server_key } => {
                Verifier { salt, iterations, stored_key, server_key }
            }
            ScramSecret::SaltedPassword { .. } => unreachable!("verifier_from_salted_password makes a verifier"),
        }
    }

    /// One nobody knows the password of.
    fn random() -> Verifier {
        let bytes = |n: usize| (0..n).map(|_| rand::random::<u8>()).collect::<Vec<u8>>();
        Verifier { salt: bytes(16), iterations: ITERATIONS, stored_key: bytes(32), server_key: bytes(32) }
    }

    fn secret(&self) -> ScramSecret {
        ScramSecret::Verifier {
            salt: self.salt.clone(),
            iterations: self.iterations,
            stored_key: self.stored_key.clone(),
            server_key: self.server_key.clone(),
        }
    }
}

/// The users a gateway lets in.
pub struct Users {
    by_name: HashMap<String, Verifier>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    user: Vec<UserEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    name: String,
    password: String,
}

impl Users {
    /// Reads a users file (module docs).
    pub fn load(path: &Path) -> anyhow::Result<Users> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Users::parse(&text).with_context(|| path.display().to_string())
    }

    fn parse(text: &str) -> anyhow::Result<Users> {
        let file: UsersFile = toml::from_str(text)?;
        if file.user.is_empty() {
            bail!("no [[user]] entries: nobody could connect");
        }
        let mut by_name = HashMap::new();
        for u in file.user {
            let verifier = if u.password.starts_with("SCRAM-SHA-256$") {
                Verifier::parse(&u.password).with_context(|| format!("user {}", u.name))?
            } else {
                Verifier::from_password(&u.password)
            };
            if by_name.insert(u.name.clone(), verifier).is_some() {
                bail!("user {} is listed twice", u.name);
            }
        }
        Ok(Users { by_name })
    }

    /// The SCRAM secret to check `user` against: a random one for an
    /// unknown user (module docs).
    pub fn secret(&self, user: &str) -> ScramSecret {
        self.by_name.get(user).cloned().unwrap_or_else(Verifier::random).secret()
    }
}

/// A SASLInitialResponse's mechanism and data, read without trusting its
/// lengths (pgwire's own decoder would read past a short body).
pub fn sasl_initial_response(body: &[u8]) -> Option<(String, &[u8])> {
    let end = body.iter().position(|b| *b == 0)?;
    let mechanism = String::from_utf8(body[..end].to_vec()).ok()?;
    let rest = &body[end + 1..];
    let len = i32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    let data = rest.get(4..)?;
    match usize::try_from(len) {
        Ok(n) if n == data.len() => Some((mechanism, data)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a PostgreSQL verifier and a cleartext password both load; a
    /// malformed verifier, a duplicate user and an empty file are errors.
    #[test]
    fn users_files_load_and_bad_ones_are_refused() {
        // A verifier for the password "pencil" in PostgreSQL's format
        // (RFC 7677's example salt and iterations).
        let verifier = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";
        let users = Users::parse(&format!(
            "[[user]]\nname = \"alice\"\npassword = \"{verifier}\"\n[[user]]\nname = \"bob\"\npassword = \"secret\"\n"
        ))
        .unwrap();
        // The parsed verifier is the one the password makes with its salt.
        let alice = &users.by_name["alice"];
        let salted = gen_salted_password("pencil", &alice.salt, alice.iterations);
        let ScramSecret::Verifier { stored_key, server_key, .. } =
            ScramSecret::verifier_from_salted_password(alice.salt.clone(), salted, alice.iterations)
        else {
            panic!("a verifier")
        };
        assert_eq!((&stored_key, &server_key), (&alice.stored_key, &alice.server_key));
        assert!(matches!(users.secret("alice"), ScramSecret::Verifier { iterations: 4096, .. }));
        assert!(matches!(users.secret("bob"), ScramSecret::Verifier { iterations: ITERATIONS, .. }));
        for bad in [
            "[[user]]\nname = \"a\"\npassword = \"SCRAM-SHA-256$4096:xx\"\n",
            "[[user]]\nname = \"a\"\npassword = \"p\"\n[[user]]\nname = \"a\"\npassword = \"q\"\n",
            "",
            "[[user]]\nname = \"a\"\n",
        ] {
            assert!(Users::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn short_sasl_responses_are_refused() {
        let mut good = b"SCRAM-SHA-256\0".to_vec();
        good.extend_from_slice(&3i32.to_be_bytes());
        good.extend_from_slice(b"n,,");
        assert_eq!(sasl_initial_response(&good), Some(("SCRAM-SHA-256".to_string(), b"n,,".as_slice())));
        for cut in 0..good.len() {
            assert_eq!(sasl_initial_response(&good[..cut]), None, "cut at {cut}");
        }
    }
}
