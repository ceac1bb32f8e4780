//! The jam panel: host a LAN jam, or find one and join it with the code the room was told.
//!
//! Hosting needs the project on this machine's own authority (solo mode). While the panel is
//! open and this window is not in a jam, it listens for beacons and lists the jams it hears.
//! Joining one opens it in a new window of this program (`--join HOST --code CODE`), connected
//! to the jam's authority, and closes this one: a window works on one authority's project.

use std::collections::HashMap;

use bevy::prelude::*;
use bevy_egui::{EguiContexts, egui};
use ensemble_protocol::jam::JoinCode;

use super::{View, theme};
use crate::jam::beacon::Discovery;
use crate::jam::{Jam, JamPorts, JamRequest, JamStatus};
use crate::solo::LanAccess;

/// The panel's own state: the beacon listener while it is open, and the codes being typed.
#[derive(Default)]
pub(super) struct Panel {
    discovery: Option<Result<Discovery, String>>,
    typed: HashMap<String, String>,
    problem: Option<String>,
}

/// Draws the jam panel when it is open.
#[allow(clippy::too_many_arguments)]
pub(super) fn draw(
    mut contexts: EguiContexts,
    mut view: ResMut<View>,
    mut panel: Local<Panel>,
    jam: Res<Jam>,
    ports: Res<JamPorts>,
    lan: Option<Res<LanAccess>>,
    mut requests: MessageWriter<JamRequest>,
    mut exit: MessageWriter<AppExit>,
) -> Result {
    let listening = view.jam && !jam.is_active();
    match (&panel.discovery, listening) {
        (None, true) => panel.discovery = Some(Discovery::listen(ports.beacon).map_err(|e| e.to_string())),
        (Some(_), false) => panel.discovery = None,
        _ => {}
    }
    if !view.jam {
        return Ok(());
    }
    let ctx = contexts.ctx_mut()?.clone();
    let mut open = true;
    egui::Window::new("LAN jam")
        .open(&mut open)
        .collapsible(false)
        .resizable(false)
        .default_width(420.0)
        .anchor(egui::Align2::RIGHT_TOP, egui::vec2(-12.0, 60.0))
        .show(&ctx, |ui| match jam.status() {
            JamStatus::Hosting { code, peers, port } => {
                ui.label("Others join with this code:");
                ui.label(egui::RichText::new(code.to_string()).size(34.0).monospace().color(theme::ACCENT));
                let who = match peers {
                    0 => "Nobody has joined yet.".to_owned(),
                    1 => "1 musician has joined.".to_owned(),
                    n => format!("{n} musicians have joined."),
                };
                ui.label(who);
                ui.label(egui::RichText::new(format!("renet on UDP port {port}")).small().color(theme::DIM));
                if ui.button("Stop hosting").clicked() {
                    requests.write(JamRequest::Leave);
                }
            }
            JamStatus::Joined { host, connected, offset_ms, samples } => {
                ui.heading(format!("Jamming with {host}"));
                if *connected {
                    ui.colored_label(theme::ACCENT, "connected");
                } else {
                    ui.colored_label(theme::WARN, "the host is not answering; trying again");
                }
                match offset_ms {
                    Some(offset) => ui.label(format!("host clock {offset:+.3} ms from ours, from {samples} exchanges")),
                    None => ui.label("learning the host's clock…"),
                };
                if ui.button("Leave the jam").clicked() {
                    requests.write(JamRequest::Leave);
                }
            }
            status => {
                if let JamStatus::Failed(reason) = status {
                    ui.colored_label(theme::WARN, reason);
                }
                let can_host = lan.as_ref().is_some_and(|lan| lan.served().is_some());
                let host = ui.add_enabled(can_host, egui::Button::new("Host a jam on this project"));
                let host = if can_host {
                    host.on_hover_text("Musicians on this network join with a code; edits are saved here")
                } else {
                    host.on_disabled_hover_text("Only a project on this machine (solo mode) can host a jam")
                };
                if host.clicked() {
                    requests.write(JamRequest::Host(None));
                }
                ui.separator();
                ui.label("Jams on this network");
                join_list(ui, &mut panel, &mut exit);
            }
        });
    if !open {
        view.jam = false;
    }
    Ok(())
}

/// The jams heard, each with a code field and a Join button.
fn join_list(ui: &mut egui::Ui, panel: &mut Panel, exit: &mut MessageWriter<AppExit>) {
    let jams = match &panel.discovery {
        Some(Ok(discovery)) => discovery.jams(),
        Some(Err(error)) => {
            ui.colored_label(theme::WARN, format!("cannot listen for jams: {error}"));
            return;
        }
        None => Vec::new(),
    };
    if jams.is_empty() {
        ui.colored_label(theme::DIM, "listening… (a host's jam shows here within a second)");
    }
    for jam in jams {
        let key = format!("{}:{}", jam.host, jam.beacon.renet_port);
        ui.horizontal(|ui| {
            ui.label(format!("{} — {}", jam.beacon.host, jam.beacon.project_name));
            ui.label(egui::RichText::new(jam.host.to_string()).small().color(theme::DIM));
        });
        ui.horizontal(|ui| {
            let typed = panel.typed.entry(key.clone()).or_default();
            ui.add(egui::TextEdit::singleline(typed).hint_text("join code").desired_width(120.0));
            let code = JoinCode::parse(typed);
            if ui.add_enabled(code.is_ok(), egui::Button::new("Join")).clicked()
                && let Ok(code) = code
            {
                match reopen_joined(&jam.host.to_string(), &code) {
                    Ok(()) => {
                        exit.write(AppExit::Success);
                    }
                    Err(error) => panel.problem = Some(error),
                }
            }
        });
    }
    if let Some(problem) = &panel.problem {
        ui.colored_label(theme::WARN, problem);
    }
}

/// Opens this program again joined to the jam at `host`; this window then closes.
fn reopen_joined(host: &str, code: &JoinCode) -> Result<(), String> {
    let program = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    std::process::Command::new(program)
        .args(["--join", host, "--code", code.as_str()])
        .spawn()
        .map(|_| ())
        .map_err(|e| format!("cannot open the jam: {e}"))
}
