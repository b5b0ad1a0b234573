//! Validation and normalisation of account fields.

use unicode_normalization::UnicodeNormalization;

use crate::error::{AppError, AppResult};

/// An email address as shown to its owner, and the case-folded key it is unique by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// The address as typed, trimmed of surrounding whitespace, in Unicode NFC.
    pub address: String,
    /// [`email_key`] of the address, which no two accounts share.
    pub key: String,
}

/// The form of an address that accounts are unique by and found by: trimmed, composed to
/// Unicode NFC and then lower-cased, so that the composed and decomposed spellings of one
/// address (`é` as one code point or as `e` and a combining accent), in any case, are one
/// key.
pub fn email_key(input: &str) -> String {
    let trimmed = input.trim();
    if trimmed.is_ascii() {
        return trimmed.to_ascii_lowercase();
    }
    // Lower-casing can leave a composable pair behind, so compose once more after it.
    trimmed
        .nfc()
        .collect::<String>()
        .to_lowercase()
        .nfc()
        .collect()
}

/// An address as kept: trimmed, and composed to Unicode NFC.
pub fn composed(input: &str) -> String {
    let trimmed = input.trim();
    if trimmed.is_ascii() {
        trimmed.to_owned()
    } else {
        trimmed.nfc().collect()
    }
}

/// Trims, composes (NFC) and validates an email address.
pub fn email(field: &'static str, input: &str) -> AppResult<Email> {
    let composed = composed(input);
    let address = composed.as_str();
    let invalid = |why: &str| AppError::bad_input(field, format!("invalid email address: {why}"));
    if address.is_empty() {
        return Err(invalid("it is empty"));
    }
    if address.len() > 254 {
        return Err(invalid("it is longer than 254 characters"));
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Err(invalid("it has no @"));
    };
    if local.is_empty() || local.len() > 64 {
        return Err(invalid("the part before @ must be 1 to 64 characters"));
    }
    const FORBIDDEN: &str = "@\"(),:;<>[]\\";
    if local
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || FORBIDDEN.contains(c))
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
    {
        return Err(invalid(
            "the part before @ has characters that are not allowed",
        ));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    if labels.len() < 2
        || !labels.iter().all(label_ok)
        || labels
            .last()
            .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(invalid("the domain must look like example.com"));
    }
    Ok(Email {
        address: address.to_owned(),
        key: email_key(address),
    })
}

/// Validates a username (3–32 of `A-Z a-z 0-9 _`) and returns its case-folded key.
pub fn username(field: &'static str, input: &str) -> AppResult<String> {
    let len = input.chars().count();
    if !(3..=32).contains(&len) {
        return Err(AppError::bad_input(
            field,
            "username must be 3 to 32 characters long",
        ));
    }
    if !input.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(AppError::bad_input(
            field,
            "username may contain only letters A-Z, digits and underscores",
        ));
    }
    Ok(input.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_folded() {
        let e = email("email", "  Ada.Lovelace@Example.COM \n").unwrap();
        assert_eq!(e.address, "Ada.Lovelace@Example.COM");
        assert_eq!(e.key, "ada.lovelace@example.com");
    }

    #[test]
    fn composed_and_decomposed_spellings_are_one_address() {
        let composed = email("email", "Zo\u{00c9}@example.com").unwrap();
        let decomposed = email("email", "Zoe\u{0301}@example.com").unwrap();
        assert_eq!(decomposed.address, "Zo\u{00e9}@example.com");
        assert_eq!(composed.key, "zo\u{00e9}@example.com");
        assert_eq!(decomposed.key, composed.key);
        assert_eq!(email_key(" ZOE\u{0301}@Example.com "), composed.key);
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "ada@",
            "ada@localhost",
            "ada@ex ample.com",
            "a b@example.com",
            "ada@@example.com",
            ".ada@example.com",
            "ada..l@example.com",
            "ada@-example.com",
            "ada@example.123",
            "ada@example..com",
        ] {
            assert!(email("email", bad).is_err(), "{bad:?} should be refused");
        }
        assert!(email("email", "ada+tag@mail.example.co.uk").is_ok());
    }

    #[test]
    fn usernames_follow_the_rules() {
        assert_eq!(username("username", "Ada_99").unwrap(), "ada_99");
        for bad in ["ab", &"a".repeat(33), "ada lovelace", "ada-l", "adä"] {
            assert!(
                username("username", bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }
}
