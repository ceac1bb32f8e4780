//! Passwords and sessions.
//!
//! Passwords are kept as argon2id PHC strings. A login issues a random 32-byte
//! [`SessionToken`]; the store keeps only its blake3 hash and an expiry, so a stolen database
//! holds no usable tokens. Checking a password for an unknown user still runs argon2, so the
//! answer's timing does not tell which user names exist.

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

/// Checks a user name and password; on success issues a session token.
pub async fn login<S: Store>(store: &S, name: &str, password: &str) -> Result<Option<(UserRow, SessionToken)>, Error> {
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

/// Lets someone join an open authority under a display name. A name that belongs to a user
/// with a password is refused (they should log in); anyone else gets a passwordless user,
/// created on first use, and a session token.
pub async fn join_open<S: Store>(store: &S, display_name: &str) -> Result<Option<(UserRow, SessionToken)>, Error> {
    let name = display_name.trim();
    if name.is_empty() || name.chars().count() > ensemble_protocol::validate::MAX_NAME_CHARS {
        return Ok(None);
    }
    let user = match store.user_by_name(name).await? {
        Some(user) if user.password_hash.is_empty() => user,
        Some(_) => return Ok(None),
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
