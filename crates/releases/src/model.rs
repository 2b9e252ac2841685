//! Releases, their artifacts, validation and version order.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ReleaseError;

/// One platform's downloads of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// `<os>-<arch>`, as Tauri names targets: `darwin-aarch64`, `windows-x86_64`, …
    pub platform: String,
    /// What a person downloads (`.dmg`, `.msi`/`.exe`, `.AppImage`/`.deb`).
    pub installer_url: Option<String>,
    /// What the desktop app's updater downloads.
    pub updater_url: Option<String>,
    /// The updater bundle's signature (the text of its `.sig`).
    pub updater_signature: Option<String>,
}

/// A desktop release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub version: String,
    pub release_notes: String,
    pub pub_date: DateTime<Utc>,
    pub artifacts: Vec<Artifact>,
}

/// A release to create; `pub_date` defaults to now.
#[derive(Debug, Clone, Default)]
pub struct NewRelease {
    pub version: String,
    pub release_notes: String,
    pub pub_date: Option<DateTime<Utc>>,
    pub artifacts: Vec<Artifact>,
}

pub(crate) const MAX_VERSION_CHARS: usize = 64;
pub(crate) const MAX_NOTES_CHARS: usize = 100_000;
pub(crate) const MAX_ARTIFACTS: usize = 32;
pub(crate) const MAX_URL_CHARS: usize = 2048;
pub(crate) const MAX_SIGNATURE_CHARS: usize = 8192;

/// A version string: 1–64 of `0-9 A-Z a-z . + -`, starting with a digit (a leading `v` is
/// dropped), so it is a safe path segment and orders by [`compare_versions`].
pub(crate) fn normalise_version(raw: &str) -> Result<String, ReleaseError> {
    let trimmed = raw.trim();
    let version = trimmed
        .strip_prefix('v')
        .or_else(|| trimmed.strip_prefix('V'))
        .unwrap_or(trimmed);
    if version.is_empty() || version.chars().count() > MAX_VERSION_CHARS {
        return Err(ReleaseError::invalid(
            "version",
            format!("must be 1 to {MAX_VERSION_CHARS} characters"),
        ));
    }
    if !version.starts_with(|c: char| c.is_ascii_digit())
        || !version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-'))
    {
        return Err(ReleaseError::invalid(
            "version",
            "must start with a digit and hold only letters, digits, `.`, `+` and `-` (like 1.2.3)",
        ));
    }
    Ok(version.to_owned())
}

fn check_url(field: &'static str, url: &Option<String>) -> Result<Option<String>, ReleaseError> {
    let Some(url) = url.as_deref().map(str::trim).filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let ok = url.len() <= MAX_URL_CHARS
        && (url.starts_with("https://") || url.starts_with("http://"))
        && !url.chars().any(|c| c.is_control() || c.is_whitespace())
        && reqwest::Url::parse(url).is_ok_and(|u| u.host_str().is_some());
    if !ok {
        return Err(ReleaseError::invalid(
            field,
            format!("must be an absolute http(s) URL of at most {MAX_URL_CHARS} characters"),
        ));
    }
    Ok(Some(url.to_owned()))
}

impl NewRelease {
    /// Checks every field and returns the release to store (version normalised, empty
    /// optional fields as absent).
    pub(crate) fn validate(self, now: DateTime<Utc>) -> Result<Release, ReleaseError> {
        let version = normalise_version(&self.version)?;
        if self.release_notes.chars().count() > MAX_NOTES_CHARS {
            return Err(ReleaseError::invalid(
                "release_notes",
                format!("must be at most {MAX_NOTES_CHARS} characters"),
            ));
        }
        if self.release_notes.contains('\0') {
            return Err(ReleaseError::invalid(
                "release_notes",
                "must not contain NUL characters",
            ));
        }
        if self.artifacts.len() > MAX_ARTIFACTS {
            return Err(ReleaseError::invalid(
                "artifacts",
                format!("at most {MAX_ARTIFACTS} platforms"),
            ));
        }
        let mut artifacts: Vec<Artifact> = Vec::with_capacity(self.artifacts.len());
        for a in self.artifacts {
            let platform = a.platform.trim().to_ascii_lowercase();
            let valid = platform.len() <= 64
                && platform.split_once('-').is_some_and(|(os, arch)| {
                    let part = |s: &str| {
                        !s.is_empty()
                            && s.chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    };
                    part(os) && part(arch)
                });
            if !valid {
                return Err(ReleaseError::invalid(
                    "artifacts.platform",
                    "must be `<os>-<arch>`, like darwin-aarch64 or windows-x86_64",
                ));
            }
            if artifacts.iter().any(|b| b.platform == platform) {
                return Err(ReleaseError::invalid(
                    "artifacts.platform",
                    format!("`{platform}` is listed twice"),
                ));
            }
            let signature = a
                .updater_signature
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty());
            if signature.as_ref().is_some_and(|s| {
                s.chars().count() > MAX_SIGNATURE_CHARS || s.chars().any(|c| c == '\0')
            }) {
                return Err(ReleaseError::invalid(
                    "artifacts.updater_signature",
                    format!("must be at most {MAX_SIGNATURE_CHARS} characters, without NUL"),
                ));
            }
            artifacts.push(Artifact {
                platform,
                installer_url: check_url("artifacts.installer_url", &a.installer_url)?,
                updater_url: check_url("artifacts.updater_url", &a.updater_url)?,
                updater_signature: signature,
            });
        }
        artifacts.sort_by(|a, b| a.platform.cmp(&b.platform));
        Ok(Release {
            version,
            release_notes: self.release_notes,
            pub_date: self.pub_date.unwrap_or(now),
            artifacts,
        })
    }
}

/// Semantic-version order: numeric dot components (missing ones are 0), then a release above
/// its pre-releases (`1.0.0-beta` < `1.0.0`), pre-release identifiers compared as SemVer says;
/// build metadata (`+…`) is ignored.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn split(v: &str) -> (&str, Option<&str>) {
        let v = v.split('+').next().unwrap_or(v);
        match v.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (v, None),
        }
    }
    fn ident(a: &str, b: &str) -> Ordering {
        match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            (Err(_), Err(_)) => a.cmp(b),
        }
    }
    let ((core_a, pre_a), (core_b, pre_b)) = (split(a), split(b));
    let nums = |core: &str| -> Vec<u64> {
        core.split('.')
            .map(|p| p.parse::<u64>().unwrap_or(0))
            .collect()
    };
    let (na, nb) = (nums(core_a), nums(core_b));
    for i in 0..na.len().max(nb.len()) {
        let ord = na
            .get(i)
            .copied()
            .unwrap_or(0)
            .cmp(&nb.get(i).copied().unwrap_or(0));
        if ord != Ordering::Equal {
            return ord;
        }
    }
    match (pre_a, pre_b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => {
            let (xs, ys): (Vec<&str>, Vec<&str>) = (x.split('.').collect(), y.split('.').collect());
            for (p, q) in xs.iter().zip(&ys) {
                let ord = ident(p, q);
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            xs.len().cmp(&ys.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_as_semver() {
        let mut v = vec![
            "1.0.0",
            "1.0.0-beta.2",
            "0.9.12",
            "1.0.0-alpha",
            "1.0.0-beta.11",
            "1.10.0",
            "1.2",
            "1.0.0-alpha.1",
        ];
        v.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(
            v,
            vec![
                "0.9.12",
                "1.0.0-alpha",
                "1.0.0-alpha.1",
                "1.0.0-beta.2",
                "1.0.0-beta.11",
                "1.0.0",
                "1.2",
                "1.10.0"
            ]
        );
        assert_eq!(compare_versions("1.2.0+build", "1.2"), Ordering::Equal);
    }

    #[test]
    fn versions_are_safe_path_segments() {
        assert_eq!(normalise_version(" v1.2.3 ").unwrap(), "1.2.3");
        assert_eq!(normalise_version("1.0.0-rc.1+b7").unwrap(), "1.0.0-rc.1+b7");
        for bad in [
            "",
            "v",
            "../1",
            "1/2",
            "beta",
            "1.0 0",
            "1\0",
            &"1".repeat(65),
        ] {
            assert!(normalise_version(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn artifacts_are_checked() {
        let now = Utc::now();
        let release = NewRelease {
            version: "1.0.0".into(),
            artifacts: vec![
                Artifact {
                    platform: "Windows-x86_64".into(),
                    installer_url: Some("https://example.com/a.msi".into()),
                    updater_url: Some(String::new()),
                    updater_signature: Some("  ".into()),
                },
                Artifact {
                    platform: "darwin-aarch64".into(),
                    installer_url: None,
                    updater_url: Some("https://example.com/a.app.tar.gz".into()),
                    updater_signature: Some("sig".into()),
                },
            ],
            ..NewRelease::default()
        }
        .validate(now)
        .unwrap();
        assert_eq!(release.pub_date, now);
        assert_eq!(release.artifacts[0].platform, "darwin-aarch64");
        assert_eq!(release.artifacts[1].platform, "windows-x86_64");
        assert_eq!(release.artifacts[1].updater_url, None);
        assert_eq!(release.artifacts[1].updater_signature, None);

        let with = |platform: &str, url: &str| NewRelease {
            version: "1.0.0".into(),
            artifacts: vec![Artifact {
                platform: platform.into(),
                installer_url: Some(url.into()),
                updater_url: None,
                updater_signature: None,
            }],
            ..NewRelease::default()
        };
        for (platform, url) in [
            ("linux", "https://example.com/a"),
            ("linux-x86_64", "ftp://example.com/a"),
            ("linux-x86_64", "javascript:alert(1)"),
            ("linux-x86_64", "https://exa mple.com/a"),
            ("linux/x86_64", "https://example.com/a"),
        ] {
            assert!(
                with(platform, url).validate(now).is_err(),
                "{platform} {url}"
            );
        }
    }
}
