//! `ensemble-web`: the DAW in a browser page, the same plugins as the native window.
//!
//! `cargo xtask web` builds it for wasm32 and puts it beside `client/web/index.html`, which
//! loads it into the page's canvas. It asks the server that served the page (the authority's
//! `serve --web`) for `/ensemble.json` — the WebTransport endpoint and the certificate hashes to
//! pin — and opens the project the link names (`?project=ID`, and `&name=` for the display name
//! on an open authority), keeping it in IndexedDB so it opens offline and keeps offline edits.
//! Natively it only says where it runs.

#[cfg(target_arch = "wasm32")]
fn main() {
    wasm_bindgen_futures::spawn_local(async {
        if let Err(reason) = web::start().await {
            web::say(&format!("Ensemble cannot start: {reason}"));
        }
    });
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("ensemble-web runs in a browser: `cargo xtask web` builds it and serves the page");
    std::process::exit(2);
}

#[cfg(target_arch = "wasm32")]
mod web {
    use bevy::prelude::*;
    use ensemble_client::ClientCorePlugin;
    use ensemble_client::assets::AssetCache;
    use ensemble_client::store::IndexedDbStore;
    use ensemble_client::sync::{Connection, SyncPlugin, SyncStatus};
    use ensemble_client::window::DawWindowPlugin;
    use ensemble_net::transport::{BrowserTransport, Credentials, PageConfig};
    use ensemble_protocol::ProjectId;
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;

    /// Tells the console (the page shows its own message when the app does not start).
    pub(crate) fn say(message: &str) {
        web_sys::console::error_1(&JsValue::from_str(message));
    }

    fn js(error: JsValue) -> String {
        error.as_string().unwrap_or_else(|| format!("{error:?}"))
    }

    pub(crate) async fn start() -> Result<(), String> {
        let window = web_sys::window().ok_or("no window")?;
        let location = window.location();
        let query = web_sys::UrlSearchParams::new_with_str(&location.search().map_err(js)?).map_err(js)?;
        let project = query.get("project").ok_or("the link names no project (…/?project=ID)")?;
        let project = ProjectId(project.parse().map_err(|error| format!("project {project}: {error}"))?);
        let name = query.get("name").unwrap_or_else(|| "Guest".to_owned());
        let response = JsFuture::from(window.fetch_with_str("/ensemble.json")).await.map_err(js)?;
        let response: web_sys::Response = response.dyn_into().map_err(js)?;
        let text = JsFuture::from(response.text().map_err(js)?).await.map_err(js)?;
        let config: PageConfig =
            serde_json::from_str(&text.as_string().unwrap_or_default()).map_err(|error| error.to_string())?;
        let hashes = config.hashes().map_err(|error| error.to_string())?;
        let host = location.hostname().map_err(js)?;
        let credentials = Credentials::Open { display_name: name, join_code: None };
        let transport = BrowserTransport::new(&config.url(&host), hashes, credentials);
        let sync = SyncPlugin::with_store(
            transport,
            project,
            move || IndexedDbStore::open(project),
            AssetCache::in_indexed_db(),
        );
        App::new()
            .add_plugins(DefaultPlugins.set(WindowPlugin {
                primary_window: Some(Window {
                    title: "Ensemble".into(),
                    canvas: Some("#ensemble".into()),
                    fit_canvas_to_parent: true,
                    // The DAW keeps its keys (Space, Ctrl+Z…) from the browser.
                    prevent_default_event_handling: true,
                    ..default()
                }),
                ..default()
            }))
            .insert_resource(ClearColor(Color::srgb_u8(24, 26, 30)))
            .add_plugins((ClientCorePlugin, sync, DawWindowPlugin))
            .add_systems(Update, report_connection)
            .run();
        Ok(())
    }

    /// Says in the console when the connection changes (how a page's checks know it is online).
    fn report_connection(status: Res<SyncStatus>, mut last: Local<Option<Connection>>) {
        if last.as_ref() != Some(&status.connection) {
            match &status.connection {
                Connection::Online { name, .. } => info!("ENSEMBLE online as {name}"),
                other => info!("ENSEMBLE connection: {other:?}"),
            }
            *last = Some(status.connection.clone());
        }
    }
}
