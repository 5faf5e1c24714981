//! The bank workload: money moves between accounts on different shards in
//! read-write transactions; read-only transactions total it up.
//!
//! ```text
//!   f         invoke                              ok                       client call
//!   transfer  {"from": 3, "to": 15, "amount": 4}  same + commit_ts         begin; get from; get to;
//!                                                                          put both; commit
//!   read      {"mode": "read-only",               {"0": 97, "3": 104, ...}  read_only(): get every account
//!              "replica": "follower"}
//!   read      {"mode": "bounded-staleness", ...}  same shape               bounded_staleness(d): same
//! ```
//!
//! Before the workers start, one transaction (not in the history) gives
//! every account [`BANK_INITIAL_BALANCE`]; the checker then wants every ok
//! read to hold every account, to sum to `accounts * initial`, and to have
//! no negative balance. A transfer that would overdraw is rolled back and
//! recorded `fail` ("insufficient funds"), as in Jepsen's bank.
//!
//! Account `i` lives at `spread_key(run, "bank", i)`; the account ids are
//! spaced `26 / accounts` apart so their keys' first letters (and so their
//! shards) differ: with 8 accounts the letters are a, d, g, j, m, p, s, v,
//! over all four shards of a started cluster. Most transfers are
//! cross-shard two-phase commits.
//!
//! Reads of both kinds are lock-free snapshots. `read-only` reads at
//! `TT.now().latest` (externally consistent); `bounded-staleness` reads at
//! whatever the first replica it reaches can serve, at most
//! [`BANK_READ_STALENESS`] old. Half of each kind go to followers first
//! (`"replica": "follower"`, `ReadOnlyTxn::prefer`), the rest where the
//! mode prefers (`"auto"`: the leader for read-only, any replica for
//! bounded staleness), so every total is read on leaders and followers
//! alike and exercises `t_safe` there. Neither records a `commit_ts`: a read timestamp obeys a weaker
//! rule than a commit timestamp (see the `external` checker). The setup
//! waits out [`BANK_READ_STALENESS`] after its commit, so no bounded read
//! can predate the accounts.

use std::sync::Arc;

use client::{Client, ReplicaPreference};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Map, Value};

use super::{decode_int, encode_int, guarded, spread_key, Completion, Effect, Invocation};
use crate::limits::{BANK_ACCOUNTS, BANK_INITIAL_BALANCE, BANK_READ_STALENESS, BANK_TRANSFER_MAX};

/// The account ids of a bank of `accounts` accounts (module docs).
pub fn account_ids(accounts: usize) -> Vec<u64> {
    let spacing = (26 / accounts.max(1)).max(1) as u64;
    (0..accounts as u64).map(|i| i * spacing).collect()
}

/// What the checker needs to know about the bank: its accounts and total.
pub fn options() -> jepsen::BankOptions {
    jepsen::BankOptions {
        total: BANK_INITIAL_BALANCE * BANK_ACCOUNTS as i64,
        negative_allowed: false,
        accounts: Some(account_ids(BANK_ACCOUNTS).iter().map(|id| id.to_string()).collect()),
    }
}

pub struct Bank {
    run: String,
    accounts: Arc<[u64]>,
}

impl Bank {
    pub fn new(run: &str) -> Bank {
        Bank { run: run.to_string(), accounts: account_ids(BANK_ACCOUNTS).into() }
    }

    fn key(&self, account: u64) -> Vec<u8> {
        spread_key(&self.run, "bank", account)
    }

    /// Opens every account with the initial balance, in one transaction,
    /// then waits until no bounded-staleness read can predate it.
    pub async fn setup(&self, client: &Client) -> client::Result<()> {
        let mut txn = client.begin();
        for &account in self.accounts.iter() {
            txn.put(&self.key(account), &encode_int(BANK_INITIAL_BALANCE));
        }
        txn.commit().await?;
        // A wait for time itself to pass (nothing to poll): afterwards every
        // read's timestamp is past the commit.
        tokio::time::sleep(BANK_READ_STALENESS * 2).await;
        Ok(())
    }

    /// A transfer between two distinct random accounts, or (one op in
    /// two) a read of every balance.
    pub fn next(&self, rng: &mut StdRng) -> Invocation {
        if rng.random_bool(0.5) {
            let replica = if rng.random_bool(0.5) { "follower" } else { "auto" };
            let mode = if rng.random_bool(0.5) {
                json!({ "mode": "read-only", "replica": replica })
            } else {
                json!({
                    "mode": "bounded-staleness",
                    "max_staleness_ms": BANK_READ_STALENESS.as_millis() as u64,
                    "replica": replica,
                })
            };
            return Invocation { f: "read", value: mode };
        }
        let from = rng.random_range(0..self.accounts.len());
        let to = (from + rng.random_range(1..self.accounts.len())) % self.accounts.len();
        let amount = rng.random_range(1..=BANK_TRANSFER_MAX);
        Invocation {
            f: "transfer",
            value: json!({ "from": self.accounts[from], "to": self.accounts[to], "amount": amount }),
        }
    }

    pub async fn execute(&self, client: &Client, op: &Invocation) -> Completion {
        match op.f {
            "transfer" => guarded(Effect::Write, &op.value, self.transfer(client, &op.value)).await,
            "read" => guarded(Effect::Read, &op.value, self.read(client, &op.value)).await,
            other => unreachable!("the bank generator made an op {other:?}"),
        }
    }

    async fn transfer(&self, client: &Client, v: &Value) -> Completion {
        let field = |name: &str| v[name].as_u64().expect("transfers are generated with integer fields");
        let (from, to, amount) = (field("from"), field("to"), field("amount") as i64);
        let mut txn = client.begin();
        let mut balances = [0i64; 2];
        for (slot, account) in [from, to].into_iter().enumerate() {
            match txn.get(&self.key(account)).await {
                Ok(Some(bytes)) => match decode_int(&bytes).as_i64() {
                    Some(b) => balances[slot] = b,
                    None => return Completion::fail(v.clone(), format!("account {account} holds {bytes:?}")),
                },
                Ok(None) => return Completion::fail(v.clone(), format!("account {account} does not exist")),
                // Nothing was written: dropping the transaction releases it.
                Err(e) => return Completion::fail(v.clone(), e.to_string()),
            }
        }
        if balances[0] < amount {
            let _ = txn.rollback().await;
            return Completion::fail(v.clone(), "insufficient funds");
        }
        txn.put(&self.key(from), &encode_int(balances[0] - amount));
        txn.put(&self.key(to), &encode_int(balances[1] + amount));
        match txn.commit().await {
            Ok(ts) => Completion::ok(v.clone(), Some(ts.as_nanos())),
            Err(e) => Completion::write_error(v.clone(), &e),
        }
    }

    async fn read(&self, client: &Client, v: &Value) -> Completion {
        let txn = match v["mode"].as_str() {
            Some("read-only") => client.read_only(),
            _ => client.bounded_staleness(BANK_READ_STALENESS),
        };
        let mut txn = match v["replica"].as_str() {
            Some("follower") => txn.prefer(ReplicaPreference::Follower),
            _ => txn,
        };
        let mut balances = Map::new();
        for &account in self.accounts.iter() {
            match txn.get(&self.key(account)).await {
                Ok(Some(bytes)) => {
                    balances.insert(account.to_string(), decode_int(&bytes));
                }
                // Missing: the checker names it.
                Ok(None) => {}
                Err(e) => return Completion::fail(v.clone(), e.to_string()),
            }
        }
        Completion::ok(Value::Object(balances), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::BTreeSet;

    /// Goal: account keys land on distinct letters, spread over the whole
    /// alphabet (so over every shard), and the checker's options match.
    #[test]
    fn accounts_spread_over_the_letters() {
        let ids = account_ids(8);
        assert_eq!(ids, vec![0, 3, 6, 9, 12, 15, 18, 21]);
        let letters: BTreeSet<u8> = ids.iter().map(|&id| spread_key("r", "bank", id)[0]).collect();
        assert_eq!(letters.len(), 8);
        assert_eq!(account_ids(26).len(), 26);
        assert_eq!(account_ids(40).len(), 40);
        let o = options();
        assert_eq!(o.total, BANK_INITIAL_BALANCE * BANK_ACCOUNTS as i64);
        assert_eq!(o.accounts.unwrap().len(), BANK_ACCOUNTS);
    }

    /// Goal: transfers name two distinct accounts of the bank and a
    /// positive amount within the bound; reads come in both modes, each
    /// from followers and where the mode prefers.
    #[test]
    fn generated_ops_are_well_formed() {
        let bank = Bank::new("r");
        let mut rng = StdRng::seed_from_u64(7);
        let mut modes = BTreeSet::new();
        for _ in 0..1_000 {
            let op = bank.next(&mut rng);
            match op.f {
                "transfer" => {
                    let (from, to) = (op.value["from"].as_u64().unwrap(), op.value["to"].as_u64().unwrap());
                    assert_ne!(from, to);
                    assert!(bank.accounts.contains(&from) && bank.accounts.contains(&to));
                    assert!((1..=BANK_TRANSFER_MAX).contains(&op.value["amount"].as_i64().unwrap()));
                }
                "read" => {
                    let (mode, replica) = (op.value["mode"].as_str().unwrap(), op.value["replica"].as_str().unwrap());
                    modes.insert(format!("{mode} {replica}"));
                }
                other => panic!("{other}"),
            }
        }
        let want = ["bounded-staleness auto", "bounded-staleness follower", "read-only auto", "read-only follower"];
        assert_eq!(modes, want.iter().map(|m| m.to_string()).collect());
    }
}
