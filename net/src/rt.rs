//! The little the client needs from an async runtime, the same on both platforms: natively the
//! tokio runtime the caller runs on; in the browser the page's event loop
//! (`wasm_bindgen_futures`) and its timers, where tokio's timers would panic.
//!
//! [`MaybeSend`] and [`MaybeSync`] are `Send` and `Sync` natively and nothing in the browser,
//! whose futures hold JavaScript values and are never `Send`: a trait bounded by them (the
//! [`Transport`](crate::transport::Transport), the client's local store) is implemented by
//! multi-threaded code natively and by single-threaded code in wasm without a second copy of
//! the trait.

use std::future::Future;
use std::time::Duration;

#[cfg(not(target_arch = "wasm32"))]
mod bounds {
    /// `Send` natively; nothing in the browser.
    pub trait MaybeSend: Send {}
    impl<T: Send + ?Sized> MaybeSend for T {}
    /// `Sync` natively; nothing in the browser.
    pub trait MaybeSync: Sync {}
    impl<T: Sync + ?Sized> MaybeSync for T {}
}

#[cfg(target_arch = "wasm32")]
mod bounds {
    /// `Send` natively; nothing in the browser.
    pub trait MaybeSend {}
    impl<T: ?Sized> MaybeSend for T {}
    /// `Sync` natively; nothing in the browser.
    pub trait MaybeSync {}
    impl<T: ?Sized> MaybeSync for T {}
}

pub use bounds::{MaybeSend, MaybeSync};

/// Runs `task` in the background: on the current tokio runtime natively, on the page's event
/// loop in the browser.
pub fn spawn(task: impl Future<Output = ()> + MaybeSend + 'static) {
    #[cfg(not(target_arch = "wasm32"))]
    tokio::spawn(task);
    #[cfg(target_arch = "wasm32")]
    wasm_bindgen_futures::spawn_local(task);
}

/// Runs `work`, which blocks (hashing, file IO), off the async threads natively (tokio's blocking
/// pool); in the browser, where nothing may block the page for long anyway, in place.
pub async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    #[cfg(not(target_arch = "wasm32"))]
    match tokio::task::spawn_blocking(work).await {
        Ok(output) => output,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
    #[cfg(target_arch = "wasm32")]
    work()
}

/// Waits `duration`.
pub async fn sleep(duration: Duration) {
    #[cfg(not(target_arch = "wasm32"))]
    tokio::time::sleep(duration).await;
    #[cfg(target_arch = "wasm32")]
    gloo_timers::future::sleep(duration).await;
}

/// `future`'s output, or `None` when `limit` passes first.
pub async fn timeout<T>(limit: Duration, future: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        output = future => Some(output),
        () = sleep(limit) => None,
    }
}
