//! Passwords and sessions.
//!
//! Passwords are kept as argon2id PHC strings. A login issues a random 32-byte
//! [`SessionToken`]; the store keeps only its blake3 hash and an expiry, so a stolen database
//! holds no usable tokens. Checking a password for an unknown user still runs argon2, so the
//! answer's timing does not tell which user names exist.
//!
//! [`LoginGuard`] stands in front of every password check: it runs a bounded number of argon2
//! checks at once (each holds about 19 MiB while it runs) and counts failed logins per account
//! and per address across connections, refusing further tries for the rest of a window without
//! checking anything.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use ensemble_protocol::wire::SessionToken;

use crate::Error;
use crate::store::{Store, UserRow, now};

/// How long a session token stays valid: 30 days.
pub const SESSION_SECONDS: i64 = 30 * 24 * 3600;

/// Hashes a password with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, Error> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| Error::Config(format!("no random source: {e}")))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Config(e.to_string()))?;
    let hash = Argon2::default().hash_password(password.as_bytes(), &salt).map_err(|e| Error::Config(e.to_string()))?;
    Ok(hash.to_string())
}

/// Whether `password` matches `hash`. An empty or unreadable hash matches nothing.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
}

/// A hash that matches no password, checked when the user does not exist.
const DECOY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$4xP1oTOydrqsKzkkITbPBR6zLCyPLZRW2gf6W+Vv1Mc";

fn token_hash(token: &SessionToken) -> [u8; 32] {
    *blake3::hash(&token.0).as_bytes()
}

async fn issue_token<S: Store>(store: &S, user: &UserRow) -> Result<SessionToken, Error> {
    let mut token = [0u8; 32];
    getrandom::fill(&mut token).map_err(|e| Error::Config(format!("no random source: {e}")))?;
    let token = SessionToken(token);
    store.create_session(token_hash(&token), user.id, now() + SESSION_SECONDS).await?;
    Ok(token)
}

/// How many password checks run at once, and how many failed logins are allowed.
#[derive(Clone, Debug)]
pub struct LoginLimits {
    /// argon2 checks running at once; more logins wait their turn.
    pub concurrent_checks: usize,
    /// Failed logins one account may have in a window, from anywhere.
    pub failures_per_account: u32,
    /// Failed logins one address may have in a window, for any account.
    pub failures_per_address: u32,
    /// How long failures are counted.
    pub window: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            concurrent_checks: std::thread::available_parallelism().map_or(2, usize::from),
            failures_per_account: 10,
            failures_per_address: 30,
            window: Duration::from_secs(300),
        }
    }
}

/// Who a failure counts against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Tally {
    Account(String),
    Address(IpAddr),
}

/// Most tallies kept; past this, expired ones are dropped and new ones not counted.
const MAX_TALLIES: usize = 65_536;

/// Bounds password checking: how many run at once, and how often one account or one address
/// may fail. Shared by every connection of an authority.
#[derive(Debug)]
pub struct LoginGuard {
    limits: LoginLimits,
    checks: tokio::sync::Semaphore,
    /// Checks running now, and the most that ever ran at once.
    running: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
    /// Failures and when their window started.
    failures: Mutex<HashMap<Tally, (u32, Instant)>>,
}

impl LoginGuard {
    /// A guard with these limits.
    pub fn new(limits: LoginLimits) -> Self {
        let checks = tokio::sync::Semaphore::new(limits.concurrent_checks.max(1));
        LoginGuard { limits, checks, running: 0.into(), peak: 0.into(), failures: Mutex::new(HashMap::new()) }
    }

    /// The most password checks that have run at once.
    pub fn peak_checks(&self) -> usize {
        self.peak.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Checks a user name and password from `address`, as [`login`] does, unless the account or
    /// the address has failed too often lately ([`Error::Denied`], saying when to try again).
    pub async fn login<S: Store>(
        &self,
        store: &S,
        address: IpAddr,
        name: &str,
        password: &str,
    ) -> Result<Option<(UserRow, SessionToken)>, Error> {
        let tallies = [Tally::Account(name.to_owned()), Tally::Address(address)];
        for tally in &tallies {
            self.refuse_if_over(tally)?;
        }
        let result = {
            use std::sync::atomic::Ordering::Relaxed;
            let _turn = self.checks.acquire().await.map_err(|e| Error::Config(e.to_string()))?;
            self.peak.fetch_max(self.running.fetch_add(1, Relaxed) + 1, Relaxed);
            let result = login(store, name, password).await;
            self.running.fetch_sub(1, Relaxed);
            result
        };
        match &result {
            Ok(Some(_)) => self.forget(&tallies[0]),
            Ok(None) => self.fail(&tallies),
            Err(_) => {}
        }
        result
    }

    /// Counts a failure that was not a password check (a wrong join code) against `address`;
    /// refused once the address has failed too often.
    pub fn failed_from(&self, address: IpAddr) -> Result<(), Error> {
        let tally = Tally::Address(address);
        self.fail(std::slice::from_ref(&tally));
        self.refuse_if_over(&tally)
    }

    fn refuse_if_over(&self, tally: &Tally) -> Result<(), Error> {
        let failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(&(count, since)) = failures.get(tally) else { return Ok(()) };
        let (limit, whose) = match tally {
            Tally::Account(_) => (self.limits.failures_per_account, "for this account"),
            Tally::Address(_) => (self.limits.failures_per_address, "from your address"),
        };
        let left = self.limits.window.saturating_sub(since.elapsed());
        if count >= limit && !left.is_zero() {
            return Err(Error::Denied(format!(
                "too many failed logins {whose}; try again in {} s",
                left.as_secs() + 1
            )));
        }
        Ok(())
    }

    fn fail(&self, tallies: &[Tally]) {
        let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let window = self.limits.window;
        if failures.len() >= MAX_TALLIES {
            failures.retain(|_, (_, since)| since.elapsed() < window);
        }
        for tally in tallies {
            if failures.len() >= MAX_TALLIES && !failures.contains_key(tally) {
                continue;
            }
            let entry = failures.entry(tally.clone()).or_insert((0, Instant::now()));
            if entry.1.elapsed() >= window {
                *entry = (0, Instant::now());
            }
            entry.0 += 1;
        }
    }

    fn forget(&self, tally: &Tally) {
        self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(tally);
    }
}

/// Checks a user name and password; on success issues a session token. A name that no user could
/// have is refused with its reason (no password is checked for it).
pub async fn login<S: Store>(store: &S, name: &str, password: &str) -> Result<Option<(UserRow, SessionToken)>, Error> {
    ensemble_protocol::validate::person_name(name).map_err(|bad| Error::Denied(format!("no such user: {bad}")))?;
    let user = store.user_by_name(name).await?;
    let hash = user.as_ref().map_or(DECOY_HASH, |user| user.password_hash.as_str()).to_owned();
    let password = password.to_owned();
    // argon2 takes tens of milliseconds of CPU: keep it off the async workers.
    let matches = tokio::task::spawn_blocking(move || verify_password(&hash, &password))
        .await
        .map_err(|e| Error::Config(format!("password check failed: {e}")))?;
    match user {
        Some(user) if matches => {
            let token = issue_token(store, &user).await?;
            Ok(Some((user, token)))
        }
        _ => Ok(None),
    }
}

/// The user a session token stands for, if it is known and has not expired.
pub async fn resume<S: Store>(store: &S, token: &SessionToken) -> Result<Option<UserRow>, Error> {
    match store.session(token_hash(token)).await? {
        Some((user, expires_at)) if expires_at > now() => store.user(user).await,
        _ => Ok(None),
    }
}

/// A session token for the user `name`, without their password: for the operator, who holds
/// the database (seeding a project as its owner).
pub async fn session_for<S: Store>(store: &S, name: &str) -> Result<SessionToken, Error> {
    let user = store.user_by_name(name).await?.ok_or_else(|| Error::NotFound(format!("user {name}")))?;
    issue_token(store, &user).await
}

/// Lets someone join an open authority under a display name. A name that belongs to a user
/// with a password is refused (they should log in); a name no one could have is refused with
/// its reason ([`Error::Denied`]); anyone else gets a passwordless user, created on first use,
/// and a session token.
pub async fn join_open<S: Store>(store: &S, display_name: &str) -> Result<Option<(UserRow, SessionToken)>, Error> {
    let name = display_name.trim();
    ensemble_protocol::validate::person_name(name).map_err(|bad| Error::Denied(format!("not a usable name: {bad}")))?;
    let user = match store.user_by_name(name).await? {
        Some(user) if user.password_hash.is_empty() => user,
        Some(_) => return Err(Error::Denied(format!("{name:?} has a password here: log in with it"))),
        None => match store.create_user(name, "").await {
            Ok(id) => UserRow { id, name: name.to_owned(), password_hash: String::new() },
            // Someone took the name between the two calls: let them have it.
            Err(Error::Exists(_)) => return Ok(None),
            Err(error) => return Err(error),
        },
    };
    let token = issue_token(store, &user).await?;
    Ok(Some((user, token)))
}
