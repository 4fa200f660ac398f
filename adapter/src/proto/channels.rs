//! Redis channel names, derived from the key prefix and the namespace.

/// The channels of one namespace. `nsp` keeps its leading slash, as in Node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channels {
    /// `key#nsp#`: broadcasts to everyone; a room broadcast appends `room#`.
    pub broadcast: String,
    /// `key-request#nsp#`: requests; its subscriber count is the server count.
    pub request: String,
    /// `key-response#nsp#`: the channel Node peers answer on by default.
    pub response: String,
}

impl Channels {
    /// The channels of namespace `nsp` under prefix `key`.
    pub fn new(key: &str, nsp: &str) -> Self {
        Self {
            broadcast: format!("{key}#{nsp}#"),
            request: format!("{key}-request#{nsp}#"),
            response: format!("{key}-response#{nsp}#"),
        }
    }

    /// The channel a broadcast is published on: Node appends the room when
    /// exactly one room is targeted (so a receiver can skip rooms it lacks).
    pub fn broadcast_channel(&self, rooms: &[String]) -> String {
        match rooms {
            [room] => format!("{}{room}#", self.broadcast),
            _ => self.broadcast.clone(),
        }
    }

    /// The pattern that matches every broadcast channel of the namespace.
    ///
    /// Node subscribes to `key#nsp#*` unescaped; glob characters in the prefix
    /// or namespace are escaped here so the pattern only matches our own
    /// channels. Publishers never see the difference.
    pub fn broadcast_pattern(&self) -> String {
        let mut pattern = String::with_capacity(self.broadcast.len() + 4);
        for c in self.broadcast.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('*');
        pattern
    }

    /// `key-response#nsp#uid#`: the response channel of the adapter `uid`.
    pub fn response_for(&self, uid: &str) -> String {
        format!("{}{uid}#", self.response)
    }
}

/// Redis glob matching (`*`, `?`, `\x`; `[` is taken literally) of `text`
/// against `pattern`, enough for the patterns [`Channels::broadcast_pattern`]
/// builds. Iterative, so hostile input cannot blow the stack.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Where to resume after the last `*`: (pattern index after it, text index).
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi + 1, ti));
                pi += 1;
                continue;
            }
            Some('?') => {
                pi += 1;
                ti += 1;
                continue;
            }
            Some('\\') if p.get(pi + 1) == Some(&t[ti]) => {
                pi += 2;
                ti += 1;
                continue;
            }
            Some(&c) if c != '\\' && c == t[ti] => {
                pi += 1;
                ti += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, st)) => {
                pi = sp;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_node() {
        let c = Channels::new("socket.io", "/");
        assert_eq!(c.broadcast, "socket.io#/#");
        assert_eq!(c.request, "socket.io-request#/#");
        assert_eq!(c.response, "socket.io-response#/#");
        assert_eq!(c.response_for("abc123"), "socket.io-response#/#abc123#");
        assert_eq!(c.broadcast_channel(&["r1".into()]), "socket.io#/#r1#");
        assert_eq!(c.broadcast_channel(&["a".into(), "b".into()]), "socket.io#/#");
        assert_eq!(c.broadcast_channel(&[]), "socket.io#/#");
        assert_eq!(c.broadcast_pattern(), "socket.io#/#*");
    }

    #[test]
    fn pattern_escapes_globs() {
        let c = Channels::new("k*", "/a?[b]");
        assert_eq!(c.broadcast_pattern(), "k\\*#/a\\?\\[b\\]#*");
        assert!(glob_match(&c.broadcast_pattern(), "k*#/a?[b]#room#"));
        assert!(!glob_match(&c.broadcast_pattern(), "kx#/a?[b]#room#"));
        assert!(!glob_match(&c.broadcast_pattern(), "k*#/az[b]#"));
    }

    #[test]
    fn glob() {
        assert!(glob_match("socket.io#/#*", "socket.io#/#"));
        assert!(glob_match("socket.io#/#*", "socket.io#/#room#"));
        assert!(!glob_match("socket.io#/#*", "socket.io#/admin#"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a\\", "a"));
        assert!(glob_match("*", ""));
    }
}
