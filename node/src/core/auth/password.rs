//! Password hashing with argon2id.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;

/// Longest password accepted, in bytes: hashing cost must stay bounded.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A new password is 1-1024 bytes.
pub fn valid_new_password(password: &str) -> bool {
    (1..=MAX_PASSWORD_BYTES).contains(&password.len())
}

/// Hashing failed (it only does on absurd parameters or a broken RNG).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// An argon2id PHC string for `password`, with a fresh random salt.
pub fn hash(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Stored hashes asking for more memory than this (KiB) are refused, not computed: a
/// row written elsewhere must not make one check allocate without bound.
const MAX_MEMORY_KIB: u32 = 256 * 1024;

/// Checks `password` against a stored PHC string, computing in `memory` (grown to the
/// hash's memory cost and kept for the next check). `None` (unknown user) still spends
/// the time of a real check, so response times do not tell which logins exist.
/// CPU-bound: call it off the async runtime.
pub fn verify_in(memory: &mut Vec<Block>, stored: Option<&str>, password: &str) -> bool {
    static DECOY: OnceLock<String> = OnceLock::new();
    let decoy = DECOY.get_or_init(|| hash("decoy password").unwrap_or_default());
    let (phc, known) = match stored {
        Some(phc) => (phc, true),
        None => (decoy.as_str(), false),
    };
    let matches =
        PasswordHash::new(phc).is_ok_and(|parsed| compute_and_compare(memory, &parsed, password));
    known && matches
}

/// [`verify_in`] with memory of its own.
pub fn verify(stored: Option<&str>, password: &str) -> bool {
    verify_in(&mut Vec::new(), stored, password)
}

fn compute_and_compare(memory: &mut Vec<Block>, parsed: &PasswordHash<'_>, password: &str) -> bool {
    let (Ok(algorithm), Ok(params)) =
        (Algorithm::try_from(parsed.algorithm), Params::try_from(parsed))
    else {
        return false;
    };
    let version = parsed.version.map_or(Ok(Version::V0x13), Version::try_from);
    let (Ok(version), Some(salt), Some(expected)) = (version, parsed.salt, parsed.hash) else {
        return false;
    };
    if params.m_cost() > MAX_MEMORY_KIB {
        return false;
    }
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else { return false };
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params.clone());
    let blocks = &mut memory[..params.block_count()];
    argon.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, blocks).is_ok()
        && bool::from(out.as_slice().ct_eq(expected.as_bytes()))
}

/// Password checks on a fixed set of threads, each computing in one memory area it
/// keeps (19 MiB for argon2id's default cost): the number of threads, not of logins,
/// bounds the memory, and a full queue refuses instead of growing.
pub struct VerifyPool {
    jobs: SyncSender<Job>,
}

type Job = (Option<String>, String, tokio::sync::oneshot::Sender<bool>);

/// Too many password checks are waiting.
#[derive(Debug, thiserror::Error)]
#[error("too many password checks waiting")]
pub struct Overloaded;

impl VerifyPool {
    /// `threads` workers and a queue of `queue` waiting checks.
    pub fn new(threads: usize, queue: usize) -> Self {
        let (jobs, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let worker = move || work(&rx);
            // Without its threads the pool refuses every check, which is safe.
            let _ = std::thread::Builder::new().name(format!("argon2-{i}")).spawn(worker);
        }
        Self { jobs }
    }

    /// [`verify`] on the pool.
    pub async fn verify(
        &self,
        stored: Option<String>,
        password: String,
    ) -> Result<bool, Overloaded> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        match self.jobs.try_send((stored, password, tx)) {
            Ok(()) => Ok(rx.await.unwrap_or(false)),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Overloaded),
        }
    }
}

/// Runs checks until the pool is dropped, reusing one memory area for all of them.
fn work(rx: &Mutex<Receiver<Job>>) {
    let mut memory = Vec::new();
    loop {
        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok((stored, password, reply)) = job else { return };
        let _ = reply.send(verify_in(&mut memory, stored.as_deref(), &password));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let phc = hash("s3cret!").expect("hash");
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify(Some(&phc), "s3cret!"));
        assert!(!verify(Some(&phc), "s3cret"));
        assert!(!verify(None, "s3cret!"));
        assert!(!verify(Some("not a hash"), "s3cret!"));
    }

    #[tokio::test]
    async fn the_pool_verifies_and_refuses_when_full() {
        let phc = hash("pw").expect("hash");
        let pool = VerifyPool::new(1, 1);
        assert!(pool.verify(Some(phc.clone()), "pw".into()).await.expect("room"));
        assert!(!pool.verify(Some(phc.clone()), "nope".into()).await.expect("room"));
        let burst = (0..8).map(|_| pool.verify(Some(phc.clone()), "pw".into()));
        let results = futures::future::join_all(burst).await;
        assert!(results.iter().any(Result::is_err), "a burst past the queue is refused");
    }
}
