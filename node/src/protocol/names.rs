//! Names of people: the login of an account, and the nickname a guest picks in-band.

/// Why a login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("login must be 1-64 characters of [A-Za-z0-9_.@-]")]
pub struct LoginError;

/// An account's login: 1-64 characters of `[A-Za-z0-9_.@-]`, safe in logs, URLs and
/// JSON.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Login(String);

checked_text!(Login, LoginError, LoginError, |login| {
    (1..=64).contains(&login.len())
        && login.chars().all(|c| c.is_ascii_alphanumeric() || "_.@-".contains(c))
});

/// Why a nickname was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("names are 1-64 characters without control characters or surrounding spaces")]
pub struct NicknameError;

/// A name other users will see (the lobby's `login`, the chat's `add user`): 1-64
/// characters, no control characters, no surrounding white space.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Nickname(String);

checked_text!(Nickname, NicknameError, NicknameError, |name| {
    (1..=64).contains(&name.chars().count())
        && !name.chars().any(char::is_control)
        && name.trim() == name
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_rules() {
        for good in ["alice.b@x-y_z", "a", &"a".repeat(64)] {
            assert_eq!(Login::parse(good).as_deref(), Ok(good));
        }
        for bad in ["", "a b", "é", "tab\t", &"a".repeat(65)] {
            assert_eq!(Login::parse(bad), Err(LoginError), "{bad:?}");
        }
        assert_eq!(LoginError.to_string(), "login must be 1-64 characters of [A-Za-z0-9_.@-]");
    }

    #[test]
    fn nickname_rules() {
        for good in ["Ann", "Анна Б.", "a", &"é".repeat(64)] {
            assert_eq!(Nickname::parse(good).as_deref(), Ok(good));
        }
        for bad in ["", " x", "x ", "new\nline", &"é".repeat(65)] {
            assert_eq!(Nickname::parse(bad), Err(NicknameError), "{bad:?}");
        }
        let json = serde_json::to_string(&Nickname::parse("Ann").expect("ok")).expect("json");
        assert_eq!(json, r#""Ann""#);
    }
}
