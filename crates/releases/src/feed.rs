//! The release feed: a GitHub-style "latest release" document (`tag_name`, `body`,
//! `published_at`, `assets[{name, browser_download_url}]`), read through the outbound policy,
//! turned into a release with one artifact per platform found in the asset names.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use platform::outbound::{OutboundPolicy, fetch, http_client_builder};

use crate::{Artifact, NewRelease, ReleaseError};

/// The largest release document read.
const MAX_FEED_BYTES: usize = 2 * 1024 * 1024;
/// The largest `.sig` read.
const MAX_SIGNATURE_BYTES: usize = 16 * 1024;
/// Assets looked at, at most.
const MAX_ASSETS: usize = 500;

/// Where releases are imported from, and how.
#[derive(Clone)]
pub struct Feed {
    url: String,
    client: reqwest::Client,
    policy: Arc<OutboundPolicy>,
}

impl Feed {
    pub fn new(url: impl Into<String>, policy: Arc<OutboundPolicy>) -> Result<Self, String> {
        let client = http_client_builder(policy.clone())
            .timeout(std::time::Duration::from_secs(30))
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            url: url.into(),
            client,
            policy,
        })
    }

    async fn get(&self, url: &str, limit: usize) -> Result<Vec<u8>, ReleaseError> {
        let headers = [
            ("accept", "application/vnd.github+json"),
            ("user-agent", "sage-server"),
        ];
        fetch(&self.client, &self.policy, url, &headers, limit)
            .await
            .map(|b| b.to_vec())
            .map_err(|e| ReleaseError::Feed(e.to_string()))
    }

    /// The feed's latest release, with the signatures of its updater bundles.
    pub(crate) async fn latest(&self) -> Result<NewRelease, ReleaseError> {
        let body = self.get(&self.url, MAX_FEED_BYTES).await?;
        let (mut release, signatures) = parse_release(&body)?;
        for artifact in &mut release.artifacts {
            if let Some(url) = signatures.get(&artifact.platform) {
                let text = self.get(url, MAX_SIGNATURE_BYTES).await?;
                let text = String::from_utf8(text).map_err(|_| {
                    ReleaseError::Feed(format!("the signature at `{url}` is not text"))
                })?;
                artifact.updater_signature = Some(text.trim().to_owned());
            }
        }
        Ok(release)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Os {
    Darwin,
    Windows,
    Linux,
}

impl Os {
    fn name(self) -> &'static str {
        match self {
            Os::Darwin => "darwin",
            Os::Windows => "windows",
            Os::Linux => "linux",
        }
    }
}

/// Installer endings, most preferred first, with their system.
const INSTALLERS: &[(&str, Os)] = &[
    (".dmg", Os::Darwin),
    (".exe", Os::Windows),
    (".msi", Os::Windows),
    (".appimage", Os::Linux),
    (".deb", Os::Linux),
    (".rpm", Os::Linux),
];

/// Updater endings, most preferred first: Tauri 1 bundles, then Tauri 2's signed installers.
const UPDATERS: &[(&str, Os)] = &[
    (".app.tar.gz", Os::Darwin),
    (".appimage.tar.gz", Os::Linux),
    (".nsis.zip", Os::Windows),
    (".msi.zip", Os::Windows),
    (".appimage", Os::Linux),
    (".exe", Os::Windows),
    (".msi", Os::Windows),
];

fn archs(name: &str) -> &'static [&'static str] {
    if name.contains("universal") {
        &["aarch64", "x86_64"]
    } else if name.contains("aarch64") || name.contains("arm64") {
        &["aarch64"]
    } else {
        &["x86_64"]
    }
}

fn rank(name: &str, table: &[(&str, Os)]) -> Option<(usize, Os)> {
    table
        .iter()
        .position(|(end, _)| name.ends_with(end))
        .and_then(|i| table.get(i).map(|(_, os)| (i, *os)))
}

/// A release document → the release (signatures not yet fetched) and, per platform, the URL
/// of its updater's `.sig`.
pub(crate) fn parse_release(
    body: &[u8],
) -> Result<(NewRelease, BTreeMap<String, String>), ReleaseError> {
    let doc: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ReleaseError::Feed(format!("the release document is not JSON: {e}")))?;
    let tag = doc["tag_name"]
        .as_str()
        .ok_or_else(|| ReleaseError::Feed("the release document has no `tag_name`".into()))?;
    let version = tag.strip_prefix("desktop-").unwrap_or(tag);
    let notes = doc["body"].as_str().unwrap_or_default().to_owned();
    let pub_date = doc["published_at"]
        .as_str()
        .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
        .map(|d| d.with_timezone(&Utc));
    let assets: Vec<(String, String)> = doc["assets"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .take(MAX_ASSETS)
        .filter_map(|a| {
            Some((
                a["name"].as_str()?.to_ascii_lowercase(),
                a["browser_download_url"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let signature_of = |name: &str| {
        assets
            .iter()
            .find(|(n, _)| n.strip_suffix(".sig") == Some(name))
            .map(|(_, url)| url.clone())
    };
    // platform → (rank, url) for installers; (rank, url, sig url) for updaters.
    let mut installers: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut updaters: BTreeMap<String, (usize, String, String)> = BTreeMap::new();
    for (name, url) in &assets {
        if name.ends_with(".sig") {
            continue;
        }
        if let Some((r, os)) = rank(name, UPDATERS)
            && let Some(sig) = signature_of(name)
        {
            for arch in archs(name) {
                let platform = format!("{}-{arch}", os.name());
                if updaters.get(&platform).is_none_or(|(best, _, _)| r < *best) {
                    updaters.insert(platform, (r, url.clone(), sig.clone()));
                }
            }
        }
        if let Some((r, os)) = rank(name, INSTALLERS) {
            for arch in archs(name) {
                let platform = format!("{}-{arch}", os.name());
                if installers.get(&platform).is_none_or(|(best, _)| r < *best) {
                    installers.insert(platform, (r, url.clone()));
                }
            }
        }
    }
    let platforms: std::collections::BTreeSet<&String> =
        installers.keys().chain(updaters.keys()).collect();
    let mut signatures = BTreeMap::new();
    let artifacts = platforms
        .into_iter()
        .map(|platform| {
            let updater = updaters.get(platform);
            if let Some((_, _, sig)) = updater {
                signatures.insert(platform.clone(), sig.clone());
            }
            Artifact {
                platform: platform.clone(),
                installer_url: installers.get(platform).map(|(_, url)| url.clone()),
                updater_url: updater.map(|(_, url, _)| url.clone()),
                updater_signature: None,
            }
        })
        .collect();
    Ok((
        NewRelease {
            version: version.to_owned(),
            release_notes: notes,
            pub_date,
            artifacts,
        },
        signatures,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_become_platforms() {
        let asset = |name: &str| serde_json::json!({"name": name, "browser_download_url": format!("https://dl.example/{name}")});
        let doc = serde_json::json!({
            "tag_name": "desktop-v1.4.0",
            "body": "Fixes.",
            "published_at": "2026-11-30T08:00:00Z",
            "assets": [
                asset("Sage_1.4.0_aarch64.dmg"),
                asset("Sage_aarch64.app.tar.gz"),
                asset("Sage_aarch64.app.tar.gz.sig"),
                asset("Sage_1.4.0_x64.dmg"),
                asset("Sage_1.4.0_x64-setup.exe"),
                asset("Sage_1.4.0_x64-setup.exe.sig"),
                asset("Sage_1.4.0_x64_en-US.msi"),
                asset("Sage_1.4.0_amd64.AppImage"),
                asset("Sage_1.4.0_amd64.deb"),
                asset("Sage_1.4.0_amd64.AppImage.tar.gz"),
                asset("Sage_1.4.0_amd64.AppImage.tar.gz.sig"),
                asset("checksums.txt"),
            ],
        });
        let (release, sigs) = parse_release(doc.to_string().as_bytes()).unwrap();
        assert_eq!(release.version, "v1.4.0");
        assert_eq!(release.release_notes, "Fixes.");
        assert_eq!(
            release.pub_date.map(|d| d.to_rfc3339()),
            Some("2026-11-30T08:00:00+00:00".into())
        );
        let by: BTreeMap<&str, &Artifact> = release
            .artifacts
            .iter()
            .map(|a| (a.platform.as_str(), a))
            .collect();
        assert_eq!(
            by.keys().copied().collect::<Vec<_>>(),
            [
                "darwin-aarch64",
                "darwin-x86_64",
                "linux-x86_64",
                "windows-x86_64"
            ]
        );
        let url = |s: &str| Some(format!("https://dl.example/{s}"));
        assert_eq!(
            by["darwin-aarch64"].installer_url,
            url("Sage_1.4.0_aarch64.dmg")
        );
        assert_eq!(
            by["darwin-aarch64"].updater_url,
            url("Sage_aarch64.app.tar.gz")
        );
        assert_eq!(by["darwin-x86_64"].updater_url, None);
        assert_eq!(
            by["windows-x86_64"].installer_url,
            url("Sage_1.4.0_x64-setup.exe")
        );
        assert_eq!(
            by["windows-x86_64"].updater_url,
            url("Sage_1.4.0_x64-setup.exe")
        );
        assert_eq!(
            by["linux-x86_64"].installer_url,
            url("Sage_1.4.0_amd64.AppImage")
        );
        assert_eq!(
            by["linux-x86_64"].updater_url,
            url("Sage_1.4.0_amd64.AppImage.tar.gz")
        );
        assert_eq!(sigs.len(), 3);
        assert_eq!(
            sigs["linux-x86_64"],
            "https://dl.example/Sage_1.4.0_amd64.AppImage.tar.gz.sig"
        );
    }

    #[test]
    fn a_document_without_a_tag_is_refused() {
        assert!(matches!(
            parse_release(b"{\"assets\": []}"),
            Err(ReleaseError::Feed(_))
        ));
        assert!(matches!(
            parse_release(b"<html>"),
            Err(ReleaseError::Feed(_))
        ));
    }
}
