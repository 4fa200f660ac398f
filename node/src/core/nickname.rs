//! The names users pick in-band (the lobby's `login`, the chat's `add user`).

/// A name a client picks in-band (the lobby's `login`, the chat's `add user`).
#[derive(Debug, Default)]
pub struct Nickname(std::sync::Mutex<Option<String>>);

impl Nickname {
    /// The name, once chosen.
    pub fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sets the name unless one is set; returns whether it was set.
    pub fn set_once(&self, name: &str) -> bool {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let free = slot.is_none();
        if free {
            *slot = Some(name.to_owned());
        }
        free
    }

    /// Forgets the name.
    pub fn clear(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// A name other users will see: 1-64 characters, no control characters, no
/// surrounding white space.
pub fn valid_nickname(name: &str) -> Option<String> {
    let ok = (1..=64).contains(&name.chars().count())
        && !name.chars().any(char::is_control)
        && name.trim() == name;
    ok.then(|| name.to_owned())
}
