//! Live push to the glasses: each terminal is bound to cameras, and hears about a customer
//! once per visit (a cool-down per customer and terminal), not once per frame.

use std::collections::HashMap;
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Announcement {
    pub terminal: String,
    pub camera: String,
    pub card: Card,
    #[serde(rename = "box")]
    #[schema(value_type = Object)]
    pub bbox: BBox,
    /// when the frame entered the service
    pub frame_at: DateTime<Utc>,
    #[serde(skip)]
    pub frame_arrived: Instant,
}

/// Cards a slow subscriber may fall behind by before it misses some.
const BACKLOG: usize = 64;

/// What store IT sees about a terminal.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TerminalHealth {
    pub id: String,
    pub cameras: Vec<String>,
    /// open event streams (0: the glasses are off or not connected)
    pub subscribers: usize,
}

pub struct Terminals {
    settings: Vec<TerminalSettings>,
    channels: HashMap<String, broadcast::Sender<Arc<Announcement>>>,
    by_camera: HashMap<String, Vec<String>>,
    cooldown: Duration,
    announced: Mutex<HashMap<(String, i64), Instant>>,
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
                .map(|t| (t.id.clone(), broadcast::channel(BACKLOG).0))
                .collect(),
            by_camera,
            cooldown,
            announced: Mutex::new(HashMap::new()),
        }
    }

    pub fn subscribe(&self, terminal: &str) -> Option<broadcast::Receiver<Arc<Announcement>>> {
        self.channels.get(terminal).map(|c| c.subscribe())
    }

    pub fn health(&self) -> Vec<TerminalHealth> {
        self.settings
            .iter()
            .map(|t| TerminalHealth {
                id: t.id.clone(),
                cameras: t.cameras.clone(),
                subscribers: self.channels[&t.id].receiver_count(),
            })
            .collect()
    }

    /// Tells every terminal bound to `camera` about the customer, unless it was told within the
    /// cool-down. A terminal with nobody listening is not counted as told. Returns how many
    /// terminals were told.
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
        announced.retain(|_, at| now.duration_since(*at) < self.cooldown);
        let mut told = 0;
        for terminal in terminals {
            let key = (terminal.clone(), card.customer_id);
            if announced.contains_key(&key) {
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
            if self.channels[terminal].send(announcement).is_ok() {
                announced.insert(key, now);
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
        let mut a = t.subscribe("a").unwrap();
        let mut b = t.subscribe("b").unwrap();
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
        let _a = t.subscribe("a").unwrap();
        assert_eq!(announce(&t, "door", 1), 1);
        assert_eq!(announce(&t, "door", 1), 1);
    }

    #[test]
    fn nobody_listening_is_not_told_and_unbound_cameras_tell_nobody() {
        let t = terminals(Duration::from_secs(600));
        assert_eq!(announce(&t, "door", 1), 0);
        let _b = t.subscribe("b").unwrap();
        assert_eq!(
            announce(&t, "door", 1),
            1,
            "not marked as told while nobody listened"
        );
        assert_eq!(announce(&t, "back-office", 3), 0);
        assert!(t.subscribe("nobody").is_none());
    }
}
