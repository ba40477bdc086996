//! Live push to the glasses: each terminal is bound to cameras, and hears about a customer
//! once per visit (a cool-down per customer and terminal), not once per frame.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::crm::Card;
use crate::vision::BBox;

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TerminalSettings {
    pub id: String,
    /// cameras whose recognitions this terminal is told about
    pub cameras: Vec<String>,
}

/// One card pushed to one terminal.
#[derive(Debug, Clone, Serialize)]
pub struct Announcement {
    pub terminal: String,
    pub camera: String,
    pub card: Card,
    #[serde(rename = "box")]
    pub bbox: BBox,
    /// when the frame entered the service
    pub frame_at: DateTime<Utc>,
    #[serde(skip)]
    pub frame_arrived: Instant,
}

/// Cards a slow subscriber may fall behind by before it misses some.
const BACKLOG: usize = 64;

/// What store IT sees about a terminal.
#[derive(Debug, Clone, Serialize)]
pub struct TerminalHealth {
    pub id: String,
    pub cameras: Vec<String>,
    /// event streams opened with a terminal key (0: the glasses are off or not connected)
    pub glasses: usize,
    /// other open streams: the console's previews
    pub previews: usize,
}

/// Who opened a terminal's event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    Glasses,
    /// store IT watching what the glasses would show: sees every card, but a customer is not
    /// "told" until the glasses themselves heard
    Preview,
}

struct Channel {
    sender: broadcast::Sender<Arc<Announcement>>,
    glasses: Arc<AtomicUsize>,
}

/// An open event stream; the glasses count as connected while it lasts.
pub struct Subscription {
    pub receiver: broadcast::Receiver<Arc<Announcement>>,
    pub connected: Connected,
}

pub struct Connected(Option<Arc<AtomicUsize>>);

impl Drop for Connected {
    fn drop(&mut self) {
        if let Some(glasses) = &self.0 {
            glasses.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

pub struct Terminals {
    settings: Vec<TerminalSettings>,
    channels: HashMap<String, Channel>,
    by_camera: HashMap<String, Vec<String>>,
    cooldown: Duration,
    /// (terminal, customer) → when, and whether the glasses were among those told
    announced: Mutex<HashMap<(String, i64), (Instant, bool)>>,
}

impl Terminals {
    pub fn new(terminals: &[TerminalSettings], cooldown: Duration) -> Self {
        let mut by_camera: HashMap<String, Vec<String>> = HashMap::new();
        for t in terminals {
            for camera in &t.cameras {
                by_camera
                    .entry(camera.clone())
                    .or_default()
                    .push(t.id.clone());
            }
        }
        Terminals {
            settings: terminals.to_vec(),
            channels: terminals
                .iter()
                .map(|t| {
                    let channel = Channel {
                        sender: broadcast::channel(BACKLOG).0,
                        glasses: Arc::new(AtomicUsize::new(0)),
                    };
                    (t.id.clone(), channel)
                })
                .collect(),
            by_camera,
            cooldown,
            announced: Mutex::new(HashMap::new()),
        }
    }

    pub fn subscribe(&self, terminal: &str, viewer: Viewer) -> Option<Subscription> {
        let channel = self.channels.get(terminal)?;
        let connected = (viewer == Viewer::Glasses).then(|| {
            channel.glasses.fetch_add(1, Ordering::Relaxed);
            channel.glasses.clone()
        });
        Some(Subscription {
            receiver: channel.sender.subscribe(),
            connected: Connected(connected),
        })
    }

    pub fn health(&self) -> Vec<TerminalHealth> {
        self.settings
            .iter()
            .map(|t| {
                let channel = &self.channels[&t.id];
                let glasses = channel.glasses.load(Ordering::Relaxed);
                TerminalHealth {
                    id: t.id.clone(),
                    cameras: t.cameras.clone(),
                    glasses,
                    previews: channel.sender.receiver_count().saturating_sub(glasses),
                }
            })
            .collect()
    }

    /// Tells every terminal bound to `camera` about the customer, unless it was told within the
    /// cool-down. A terminal with nobody listening is not counted as told, and one with only
    /// previews listening is told again once its glasses connect. Returns how many terminals
    /// were told.
    pub fn announce(
        &self,
        camera: &str,
        card: &Card,
        bbox: BBox,
        frame_at: DateTime<Utc>,
        frame_arrived: Instant,
    ) -> usize {
        let Some(terminals) = self.by_camera.get(camera) else {
            return 0;
        };
        let now = Instant::now();
        let mut announced = self.announced.lock().unwrap_or_else(|p| p.into_inner());
        announced.retain(|_, (at, _)| now.duration_since(*at) < self.cooldown);
        let mut told = 0;
        for terminal in terminals {
            let channel = &self.channels[terminal];
            let glasses = channel.glasses.load(Ordering::Relaxed) > 0;
            let key = (terminal.clone(), card.customer_id);
            if let Some(&(_, glasses_told)) = announced.get(&key)
                && (glasses_told || !glasses)
            {
                continue;
            }
            let announcement = Arc::new(Announcement {
                terminal: terminal.clone(),
                camera: camera.to_owned(),
                card: card.clone(),
                bbox,
                frame_at,
                frame_arrived,
            });
            if channel.sender.send(announcement).is_ok() {
                announced.insert(key, (now, glasses));
                told += 1;
            }
        }
        told
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terminals(cooldown: Duration) -> Terminals {
        Terminals::new(
            &[
                TerminalSettings {
                    id: "a".into(),
                    cameras: vec!["door".into()],
                },
                TerminalSettings {
                    id: "b".into(),
                    cameras: vec!["door".into(), "till".into()],
                },
            ],
            cooldown,
        )
    }

    fn announce(t: &Terminals, camera: &str, customer: i64) -> usize {
        t.announce(
            camera,
            &Card::example(customer),
            BBox::default(),
            Utc::now(),
            Instant::now(),
        )
    }

    #[test]
    fn a_customer_is_announced_once_per_terminal_within_the_cooldown() {
        let t = terminals(Duration::from_secs(600));
        let mut a = t.subscribe("a", Viewer::Glasses).unwrap().receiver;
        let mut b = t.subscribe("b", Viewer::Glasses).unwrap().receiver;
        assert_eq!(announce(&t, "door", 1), 2);
        assert_eq!(announce(&t, "door", 1), 0);
        assert_eq!(announce(&t, "till", 1), 0, "b already heard of 1");
        assert_eq!(announce(&t, "door", 2), 2);
        assert_eq!(a.try_recv().unwrap().card.customer_id, 1);
        assert_eq!(a.try_recv().unwrap().card.customer_id, 2);
        assert!(a.try_recv().is_err());
        assert_eq!(b.try_recv().unwrap().card.customer_id, 1);
    }

    #[test]
    fn after_the_cooldown_the_customer_is_announced_again() {
        let t = terminals(Duration::ZERO);
        let _a = t.subscribe("a", Viewer::Glasses).unwrap();
        assert_eq!(announce(&t, "door", 1), 1);
        assert_eq!(announce(&t, "door", 1), 1);
    }

    #[test]
    fn nobody_listening_is_not_told_and_unbound_cameras_tell_nobody() {
        let t = terminals(Duration::from_secs(600));
        assert_eq!(announce(&t, "door", 1), 0);
        let _b = t.subscribe("b", Viewer::Glasses).unwrap();
        assert_eq!(
            announce(&t, "door", 1),
            1,
            "not marked as told while nobody listened"
        );
        assert_eq!(announce(&t, "back-office", 3), 0);
        assert!(t.subscribe("nobody", Viewer::Glasses).is_none());
    }

    #[test]
    fn a_preview_sees_the_card_once_and_the_glasses_still_hear_of_it_when_they_connect() {
        let t = terminals(Duration::from_secs(600));
        let mut preview = t.subscribe("a", Viewer::Preview).unwrap().receiver;
        assert_eq!(announce(&t, "door", 1), 1);
        assert_eq!(announce(&t, "door", 1), 0, "the preview saw it already");
        assert_eq!((t.health()[0].glasses, t.health()[0].previews), (0, 1));

        let glasses = t.subscribe("a", Viewer::Glasses).unwrap();
        let mut heard = glasses.receiver;
        assert_eq!(t.health()[0].glasses, 1);
        assert_eq!(announce(&t, "door", 1), 1, "the glasses were not told yet");
        assert_eq!(announce(&t, "door", 1), 0);
        assert_eq!(heard.try_recv().unwrap().card.customer_id, 1);
        assert!(heard.try_recv().is_err());
        assert_eq!(preview.try_recv().unwrap().card.customer_id, 1);
        assert_eq!(preview.try_recv().unwrap().card.customer_id, 1);

        drop(glasses.connected);
        assert_eq!(t.health()[0].glasses, 0, "the glasses went away");
    }
}
