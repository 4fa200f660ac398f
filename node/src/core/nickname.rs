//! The nickname a socket picks in-band (the lobby's `login`, the chat's `add user`).

use crate::protocol::names::Nickname;

/// A socket's nickname, once chosen.
#[derive(Debug, Default)]
pub struct NicknameSlot(std::sync::Mutex<Option<Nickname>>);

impl NicknameSlot {
    /// The name, once chosen.
    pub fn get(&self) -> Option<Nickname> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sets the name unless one is set; returns whether it was set.
    pub fn set_once(&self, name: &Nickname) -> bool {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let free = slot.is_none();
        if free {
            *slot = Some(name.clone());
        }
        free
    }

    /// Forgets the name.
    pub fn clear(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
