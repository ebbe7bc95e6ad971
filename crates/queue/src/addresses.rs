//! What the queue needs to know about addresses, owned by the mta and swapped whole when it
//! reloads: which domains are delivered here (LMTP) rather than to their MX, the domain for
//! bare names, and what alias expansion makes of the recipient of a notice (a bounce to
//! `root@…` or to the postmaster follows the aliases, as Postfix's bounces pass through
//! cleanup). Because the runner reads it at each routing decision, a domain added to
//! `local_domains` with SIGHUP is delivered locally without a restart.

use crate::Agent;
use std::fmt;
use std::sync::{Arc, RwLock};

/// The mta's address rules. Implemented by the mta over its alias tables.
pub trait AddressPolicy: Send + Sync {
    /// Whether mail for `domain` is delivered here (compared case-insensitively).
    fn is_local_domain(&self, domain: &str) -> bool;
    /// The domain a bare name gets (Postfix myorigin).
    fn myorigin(&self) -> &str;
    /// Final recipients of `address` after alias expansion (itself when no alias applies),
    /// each with its delivery agent (an aliases(5) `|command` or `/file` target comes back
    /// as the command or path with [`Agent::Command`] / [`Agent::File`]).
    /// `Err`: the expansion failed (loop, limit); the text says why.
    fn expand(&self, address: &str) -> Result<Vec<(String, Agent)>, String>;
    /// Whether deliveries by `agent` are enabled now (Postfix allow_mail_to_commands /
    /// allow_mail_to_files, checked again at delivery as local(8) does, so turning them off
    /// stops queued ones too). Default: mailboxes only.
    fn allows(&self, agent: &Agent) -> bool {
        matches!(agent, Agent::Mailbox)
    }
}

/// No aliases; every domain local. What the queue uses when the mta gives it nothing.
struct AllLocal;

impl AddressPolicy for AllLocal {
    fn is_local_domain(&self, _domain: &str) -> bool {
        true
    }
    fn myorigin(&self) -> &str {
        "localhost"
    }
    fn expand(&self, address: &str) -> Result<Vec<(String, Agent)>, String> {
        Ok(vec![(address.to_owned(), Agent::Mailbox)])
    }
}

/// A shared, swappable [`AddressPolicy`]: the mta's sessions and the queue runner see the
/// same rules, and a reload replaces them for both at once.
#[derive(Clone)]
pub struct Addresses(Arc<RwLock<Arc<dyn AddressPolicy>>>);

impl Addresses {
    pub fn new(policy: Arc<dyn AddressPolicy>) -> Addresses {
        Addresses(Arc::new(RwLock::new(policy)))
    }

    /// The rules in force now (a snapshot: a reload does not change it under the caller).
    pub fn current(&self) -> Arc<dyn AddressPolicy> {
        match self.0.read() {
            Ok(p) => Arc::clone(&p),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Replaces the rules (SIGHUP).
    pub fn replace(&self, policy: Arc<dyn AddressPolicy>) {
        match self.0.write() {
            Ok(mut p) => *p = policy,
            Err(poisoned) => *poisoned.into_inner() = policy,
        }
    }

    /// `user` → `user@myorigin`; addresses with a domain and the null sender unchanged.
    pub fn qualify(&self, address: &str) -> String {
        if address.is_empty() || address.contains('@') {
            address.to_owned()
        } else {
            format!("{address}@{}", self.current().myorigin())
        }
    }
}

impl Default for Addresses {
    /// Every recipient local, no aliases (tests and tools that deliver everything by LMTP).
    fn default() -> Addresses {
        Addresses::new(Arc::new(AllLocal))
    }
}

impl fmt::Debug for Addresses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Addresses")
    }
}

impl PartialEq for Addresses {
    /// The same shared handle (configs compare equal only when they share their rules).
    fn eq(&self, other: &Addresses) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Addresses {}
