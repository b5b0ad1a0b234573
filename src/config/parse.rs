//! Parsers for the values settings take: durations, counts, sizes, addresses, lists.
//!
//! Each is a clap value parser, `Fn(&str) -> Result<T, String>`; the message says what the
//! value should have looked like, and [`super::explain`] puts the setting's name before it.

use std::{net::IpAddr, ops::Deref, path::PathBuf, time::Duration};

use super::{Environment, LogFormat, Secret};

/// A comma-separated list; an empty value is an empty list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct List<T>(pub Vec<T>);

impl<T> Deref for List<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

fn list<T>(text: &str, item: impl Fn(&str) -> Result<T, String>) -> Result<List<T>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(item)
        .collect::<Result<_, _>>()
        .map(List)
}

/// The longest duration accepted: anything longer is a typo, and would overflow the
/// calendar arithmetic done on expiry times.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// A duration such as `15m`, `30d`, `2s` or `1h30m`, at most a century.
pub fn duration(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)
        .ok_or_else(|| format!("'{text}' is not a duration such as 15m, 30d, 2s or 1h30m"))?;
    if d > MAX_DURATION {
        return Err(format!("'{text}' is longer than 100 years"));
    }
    Ok(d)
}

/// A [`duration`] longer than zero.
pub fn positive(text: &str) -> Result<Duration, String> {
    match duration(text)? {
        d if d.is_zero() => Err("it must be longer than zero".to_owned()),
        d => Ok(d),
    }
}

/// Parses durations written as one or more `<number><unit>` groups, where the unit
/// is `ms`, `s`, `m`, `h` or `d`: `15m`, `30d`, `2s`, `1h30m`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86_400),
            _ => return None,
        };
        total = total.checked_add(unit.checked_mul(u32::try_from(n).ok()?)?)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// A whole number of at least `min`.
pub fn at_least(min: usize) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync {
    move |text| match text.trim().parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!("'{text}' is not a whole number of at least {min}")),
    }
}

/// A whole number of at least one that fits the rate limiter's counters.
pub fn rate(text: &str) -> Result<u32, String> {
    u32::try_from(at_least(1)(text)?).map_err(|_| format!("'{text}' is too large"))
}

/// The size of the database pool: enough for one connection, not so many that the
/// database is overrun.
pub fn pool_size(text: &str) -> Result<u32, String> {
    match at_least(1)(text)? {
        n @ 1..=1000 => Ok(n as u32),
        n => Err(format!(
            "{n} connections is more than any database should be asked for"
        )),
    }
}

/// A size in bytes, optionally followed by `KiB` or `MiB`: `1MiB`, `64KiB`, `4096`.
pub fn size(text: &str) -> Result<usize, String> {
    let trimmed = text.trim();
    let (digits, unit) = match trimmed.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => trimmed.split_at(i),
        None => (trimmed, ""),
    };
    let factor = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        _ => 0,
    };
    match digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
    {
        Some(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "'{text}' is not a size such as 1MiB, 64KiB or 4096"
        )),
    }
}

/// A [`size`], or `0` for none at all.
pub fn size_or_zero(text: &str) -> Result<usize, String> {
    match text.trim() {
        "0" => Ok(0),
        _ => size(text),
    }
}

/// An address and port such as `127.0.0.1:8000`.
pub fn address(text: &str) -> Result<std::net::SocketAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("'{text}' is not an address such as 127.0.0.1:8000"))
}

/// IP addresses separated by commas, IPv4-mapped IPv6 ones written as IPv4.
pub fn addresses(text: &str) -> Result<List<IpAddr>, String> {
    list(text, |p| {
        p.parse::<IpAddr>()
            .map(|ip| ip.to_canonical())
            .map_err(|_| format!("'{p}' is not an IP address"))
    })
}

/// Web origins separated by commas, such as `https://app.example.com`; never `*`.
pub fn origins(text: &str) -> Result<List<String>, String> {
    list(text, |o| {
        let origin = o.trim_end_matches('/');
        let well_formed = (origin.starts_with("https://") || origin.starts_with("http://"))
            && !origin["https://".len().min(origin.len())..].contains('/')
            && origin != "*";
        match well_formed {
            true => Ok(origin.to_owned()),
            false => Err(format!(
                "'{o}' is not an origin such as https://app.example.com"
            )),
        }
    })
}

/// A base URL that goes into a page and its Content-Security-Policy as it is: http or
/// https, with a host, and nothing that could end an attribute or a directive.
pub fn base_url(text: &str) -> Result<String, String> {
    let url = text.trim().trim_end_matches('/');
    let host = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("");
    let well_formed = !host.is_empty()
        && !url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"'<>\\?#;,".contains(c));
    match well_formed {
        true => Ok(url.to_owned()),
        false => Err(format!(
            "'{text}' is not a URL such as https://cdn.jsdelivr.net/npm"
        )),
    }
}

/// A path to a file; it is read when the server starts.
pub fn path(text: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(text.trim()))
}

/// A signing key of at least [`Secret::MIN_LEN`] bytes.
pub fn secret(text: &str) -> Result<Secret, String> {
    match text.len() {
        n if n < Secret::MIN_LEN => Err(format!(
            "it is {n} bytes long; use at least {} random bytes, or leave it unset to have \
             one generated and kept in the database",
            Secret::MIN_LEN
        )),
        _ => Ok(Secret::new(text.as_bytes().to_vec())),
    }
}

/// `development` (or `dev`) or `production` (or `prod`).
pub fn environment(text: &str) -> Result<Environment, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "development" | "dev" => Ok(Environment::Development),
        "production" | "prod" => Ok(Environment::Production),
        other => Err(format!("'{other}' is neither development nor production")),
    }
}

/// `true` or `false`, also written `yes`/`no`, `on`/`off` or `1`/`0`, in any case.
pub fn flag(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        other => Err(format!("'{other}' is neither true nor false")),
    }
}

/// `text` or `json`.
pub fn log_format(text: &str) -> Result<LogFormat, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("'{other}' is neither text nor json")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_the_documented_forms() {
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("30d"), Some(Duration::from_secs(2_592_000)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        for bad in ["", "15", "m", "15x", "1.5h", "-3s", "15 m", "99999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad:?} should not parse");
        }
        assert!(duration("36500d").is_ok());
        assert!(duration("36501d").unwrap_err().contains("100 years"));
        assert!(positive("0s").is_err());
    }

    #[test]
    fn sizes_counts_and_lists_parse_or_say_why_not() {
        assert_eq!(size("64KiB"), Ok(65_536));
        assert_eq!(size("1MiB"), Ok(1_048_576));
        for bad in ["0", "1GB", "lots", ""] {
            assert!(size(bad).is_err(), "{bad}");
        }
        assert_eq!(size_or_zero("0"), Ok(0));
        assert!(at_least(1)("0").is_err());
        assert!(at_least(0)("-1").is_err());
        assert_eq!(at_least(0)("0"), Ok(0));
        assert_eq!(addresses("").unwrap().len(), 0);
        assert!(addresses("10.0.0.1, proxy.local").is_err());
        assert_eq!(
            origins("https://app.example.com/").unwrap().0,
            vec!["https://app.example.com".to_owned()]
        );
        assert!(origins("https://app.example.com, *").is_err());
        assert_eq!(
            base_url("http://127.0.0.1:9000/npm/"),
            Ok("http://127.0.0.1:9000/npm".to_owned())
        );
        for bad in [
            "cdn.example.com",
            "ftp://cdn.example.com",
            "https://",
            "https://cdn.example.com/\"><script>",
            "https://cdn.example.com; script-src *",
        ] {
            assert!(base_url(bad).is_err(), "{bad}");
        }
        assert!(
            secret(&"x".repeat(31))
                .unwrap_err()
                .starts_with("it is 31 bytes long")
        );
        assert!(secret(&"x".repeat(32)).is_ok());
    }
}
