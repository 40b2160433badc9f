//! The OCI distribution spec v1.1, endpoint by endpoint, against a real
//! `estiba registry serve`. The checks mirror the official conformance
//! suite (opencontainers/distribution-spec `conformance/`): pull, push
//! (monolithic, streamed, chunked, out of order, mounts), discovery (tags,
//! pagination, referrers with filtering), management (deletes), sha512,
//! error codes, and bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::registry::{files_under, http, sha256, sha512, Registry, OPEN};
use reqwest::blocking::Response;
use serde_json::{json, Value};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn header(r: &Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

fn error_code(r: Response) -> String {
    let v: Value = r.json().expect("an error body");
    v["errors"][0]["code"].as_str().unwrap_or("").to_string()
}

fn push_blob(r: &Registry, repo: &str, data: &[u8]) -> String {
    let d = sha256(data);
    let resp = http()
        .post(r.url(&format!("/v2/{repo}/blobs/uploads/?digest={d}")))
        .header("Content-Type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "monolithic POST");
    d
}

fn manifest(config: &[u8], layers: &[&[u8]], subject: Option<(&str, usize)>) -> Vec<u8> {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": sha256(config), "size": config.len()},
        "layers": layers.iter().map(|l| json!({"mediaType": LAYER, "digest": sha256(l), "size": l.len()})).collect::<Vec<_>>(),
    });
    if let Some((d, size)) = subject {
        m["subject"] = json!({"mediaType": MANIFEST, "digest": d, "size": size});
    }
    serde_json::to_vec(&m).unwrap()
}

fn put_manifest(
    r: &Registry,
    repo: &str,
    reference: &str,
    media_type: &str,
    body: &[u8],
) -> Response {
    http()
        .put(r.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("Content-Type", media_type)
        .body(body.to_vec())
        .send()
        .unwrap()
}

/// An image pushed to `repo:tag`; returns the manifest and its digest.
fn push_image(r: &Registry, repo: &str, tag: &str, seed: &str) -> (Vec<u8>, String) {
    let config = format!("{{\"seed\":\"{seed}\"}}").into_bytes();
    let layer = format!("layer of {seed}").into_bytes();
    push_blob(r, repo, &config);
    push_blob(r, repo, &layer);
    let m = manifest(&config, &[&layer], None);
    let resp = put_manifest(r, repo, tag, MANIFEST, &m);
    assert_eq!(resp.status(), 201, "{}", resp.text().unwrap_or_default());
    let d = sha256(&m);
    (m, d)
}

#[test]
fn pull_endpoints_and_ranges() {
    let r = Registry::start(OPEN);
    let c = http();
    // /v2/ asks for credentials when none came, with a Bearer challenge.
    let base = c.get(r.url("/v2/")).send().unwrap();
    assert_eq!(base.status(), 401);
    assert!(header(&base, "www-authenticate").starts_with("Bearer realm=\"http://"));

    let blob: Vec<u8> = (0..2048u32).map(|i| (i % 251) as u8).collect();
    let d = push_blob(&r, "a/b/c", &blob);
    let head = c
        .head(r.url(&format!("/v2/a/b/c/blobs/{d}")))
        .send()
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "content-length"), "2048");
    assert_eq!(header(&head, "docker-content-digest"), d);
    let get = c
        .get(r.url(&format!("/v2/a/b/c/blobs/{d}")))
        .send()
        .unwrap();
    assert_eq!(get.bytes().unwrap().as_ref(), blob.as_slice());

    for (range, status, len, content_range) in [
        ("bytes=500-1499", 206, 1000, "bytes 500-1499/2048"),
        ("bytes=500-", 206, 1548, "bytes 500-2047/2048"),
        ("bytes=-500", 206, 500, "bytes 1548-2047/2048"),
        ("bytes=2000-5000", 206, 48, "bytes 2000-2047/2048"),
    ] {
        let resp = c
            .get(r.url(&format!("/v2/a/b/c/blobs/{d}")))
            .header("Range", range)
            .send()
            .unwrap();
        assert_eq!(resp.status(), status, "{range}");
        assert_eq!(header(&resp, "content-range"), content_range);
        let start: usize = content_range[6..]
            .split('-')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            resp.bytes().unwrap().as_ref(),
            &blob[start..start + len],
            "{range}"
        );
    }
    for range in ["bytes=500-0", "bytes=5000-10000"] {
        let resp = c
            .get(r.url(&format!("/v2/a/b/c/blobs/{d}")))
            .header("Range", range)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 416, "{range}");
    }

    // Missing content.
    let missing = sha256(b"hello world");
    assert_eq!(
        c.head(r.url(&format!("/v2/a/b/c/blobs/{missing}")))
            .send()
            .unwrap()
            .status(),
        404
    );
    let resp = c
        .get(r.url(&format!("/v2/a/b/c/blobs/{missing}")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(error_code(resp), "BLOB_UNKNOWN");
    // A blob pushed to one repository is not readable through another.
    assert_eq!(
        c.get(r.url(&format!("/v2/other/blobs/{d}")))
            .send()
            .unwrap()
            .status(),
        404
    );
    let resp = c
        .get(r.url("/v2/a/b/c/manifests/.INVALID_MANIFEST_NAME"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 404, "an invalid tag reads as unknown");
    let resp = c
        .get(r.url("/v2/a/b/c/manifests/sha256:totallywrong"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(error_code(resp), "DIGEST_INVALID");
    let resp = c
        .get(r.url("/v2/a/b/c/blobs/sha256:totallywrong"))
        .send()
        .unwrap();
    assert_eq!(
        resp.status(),
        400,
        "an invalid digest is a 400, never a 500"
    );

    // Manifests: byte-exact, with the pushed media type.
    let (m, md) = push_image(&r, "a/b/c", "v1", "pull");
    for reference in ["v1", md.as_str()] {
        let resp = c
            .get(r.url(&format!("/v2/a/b/c/manifests/{reference}")))
            .header("Accept", format!("{MANIFEST}, {INDEX}"))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(header(&resp, "content-type"), MANIFEST);
        assert_eq!(header(&resp, "docker-content-digest"), md);
        assert_eq!(header(&resp, "content-length"), m.len().to_string());
        assert_eq!(resp.bytes().unwrap().as_ref(), m.as_slice());
        let head = c
            .head(r.url(&format!("/v2/a/b/c/manifests/{reference}")))
            .send()
            .unwrap();
        assert_eq!(head.status(), 200);
        assert_eq!(header(&head, "content-length"), m.len().to_string());
    }
    let resp = c
        .get(r.url(&format!("/v2/a/b/c/manifests/{}", sha256(b"nope"))))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(error_code(resp), "MANIFEST_UNKNOWN");
}

#[test]
fn uploads_monolithic_streamed_chunked_and_out_of_order() {
    let r = Registry::start(OPEN);
    let c = http();
    let start = || {
        let resp = c
            .post(r.url("/v2/up/blobs/uploads/"))
            .header("Content-Length", "0")
            .send()
            .unwrap();
        assert_eq!(resp.status(), 202);
        assert_eq!(header(&resp, "range"), "0-0");
        let loc = header(&resp, "location");
        assert!(loc.starts_with("/v2/up/blobs/uploads/"), "{loc}");
        loc
    };
    // POST then PUT with the body.
    let a = b"blob a: post then put".to_vec();
    let loc = start();
    let resp = c
        .put(r.url(&format!("{loc}?digest={}", sha256(&a))))
        .body(a.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(
        header(&resp, "location"),
        format!("/v2/up/blobs/{}", sha256(&a))
    );

    // Streamed: PATCH without Content-Range, then an empty PUT.
    let b = b"blob b: streamed".to_vec();
    let loc = start();
    let resp = c.patch(r.url(&loc)).body(b.clone()).send().unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(header(&resp, "range"), format!("0-{}", b.len() - 1));
    let resp = c
        .put(r.url(&format!(
            "{}?digest={}",
            header(&resp, "location"),
            sha256(&b)
        )))
        .header("Content-Length", "0")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);

    // Chunked, with the conformance suite's out-of-order chunks.
    let blob: Vec<u8> = (0..42u8).collect();
    let (c1, c2) = blob.split_at(22);
    let loc = start();
    let patch = |loc: &str, range: &str, body: &[u8]| {
        c.patch(r.url(loc))
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", range)
            .body(body.to_vec())
            .send()
            .unwrap()
    };
    assert_eq!(
        patch(&loc, "22-41", c2).status(),
        416,
        "a chunk that skips ahead"
    );
    let resp = patch(&loc, "0-21", c1);
    assert_eq!(resp.status(), 202);
    assert_eq!(header(&resp, "range"), "0-21");
    // The same chunk again, to the POST's location: out of order.
    let resp = patch(&loc, "0-21", c1);
    assert_eq!(resp.status(), 416);
    let status = c.get(r.url(&loc)).send().unwrap();
    assert_eq!(status.status(), 204);
    assert_eq!(header(&status, "range"), "0-21");
    let resp = patch(&header(&status, "location"), "22-41", c2);
    assert_eq!(resp.status(), 202);
    assert_eq!(header(&resp, "range"), "0-41");
    // A Content-Range that disagrees with the body is refused.
    let resp = patch(&loc, "42-50", b"xy");
    assert_eq!(resp.status(), 400);
    assert_eq!(error_code(resp), "BLOB_UPLOAD_INVALID");
    let resp = c
        .put(r.url(&format!("{loc}?digest={}", sha256(&blob))))
        .header("Content-Length", "0")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let got = c
        .get(r.url(&format!("/v2/up/blobs/{}", sha256(&blob))))
        .send()
        .unwrap();
    assert_eq!(got.bytes().unwrap().as_ref(), blob.as_slice());

    // The last chunk may come with the PUT.
    let loc = start();
    assert_eq!(patch(&loc, "0-21", c1).status(), 202);
    let bad = c
        .put(r.url(&format!("{loc}?digest={}", sha256(&blob))))
        .header("Content-Range", "0-19")
        .body(c2[..20].to_vec())
        .send()
        .unwrap();
    assert_eq!(bad.status(), 416, "a final chunk out of order");
    let resp = c
        .put(r.url(&format!("{loc}?digest={}", sha256(&blob))))
        .header("Content-Range", "22-41")
        .body(c2.to_vec())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);

    // Cancel.
    let loc = start();
    assert_eq!(c.delete(r.url(&loc)).send().unwrap().status(), 204);
    let resp = c.get(r.url(&loc)).send().unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(error_code(resp), "BLOB_UPLOAD_UNKNOWN");
    // Upload ids belong to their repository.
    let loc = start();
    let elsewhere = loc.replace("/v2/up/", "/v2/other/");
    assert_eq!(c.get(r.url(&elsewhere)).send().unwrap().status(), 404);

    // A wrong digest: 400, and nothing becomes visible.
    let data = b"the real content".to_vec();
    let mut longer = data.clone();
    longer.extend_from_slice(b"extra");
    for post_only in [true, false] {
        let resp = if post_only {
            c.post(r.url(&format!("/v2/up/blobs/uploads/?digest={}", sha256(&data))))
                .body(longer.clone())
                .send()
                .unwrap()
        } else {
            let loc = start();
            c.put(r.url(&format!("{loc}?digest={}", sha256(&data))))
                .body(longer.clone())
                .send()
                .unwrap()
        };
        assert_eq!(resp.status(), 400);
        assert_eq!(error_code(resp), "DIGEST_INVALID");
        assert_eq!(
            c.head(r.url(&format!("/v2/up/blobs/{}", sha256(&data))))
                .send()
                .unwrap()
                .status(),
            404
        );
    }
    assert!(
        files_under(&r.root().join("blobs"))
            .iter()
            .all(|p| !p.ends_with(&sha256(&data)[7..]) && !p.ends_with(&sha256(&longer)[7..])),
        "no blob of a failed upload is stored"
    );
    // Digests that are not digests.
    for bad in [
        "sha256:abc",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "sha256:../../etc",
    ] {
        let resp = c
            .post(r.url(&format!("/v2/up/blobs/uploads/?digest={bad}")))
            .body("x")
            .send()
            .unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
    }
    // Empty blob.
    let d = push_blob(&r, "up", b"");
    let head = c.head(r.url(&format!("/v2/up/blobs/{d}"))).send().unwrap();
    assert_eq!(header(&head, "content-length"), "0");
}

#[test]
fn sha512_blobs_and_manifests() {
    let r = Registry::start(OPEN);
    let c = http();
    let blob: Vec<u8> = (0..3067u32).map(|i| (i * 7 % 256) as u8).collect();
    let d = sha512(&blob);
    // Chunked, and the algorithm appears only on the final PUT.
    let loc = header(
        &c.post(r.url("/v2/s5/blobs/uploads/")).send().unwrap(),
        "location",
    );
    for (start, end) in [(0usize, 1023usize), (1024, 2047), (2048, 3066)] {
        let resp = c
            .patch(r.url(&loc))
            .header("Content-Range", format!("{start}-{end}"))
            .body(blob[start..=end].to_vec())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 202);
    }
    let resp = c.put(r.url(&format!("{loc}?digest={d}"))).send().unwrap();
    assert_eq!(resp.status(), 201);
    let head = c.head(r.url(&format!("/v2/s5/blobs/{d}"))).send().unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "docker-content-digest"), d);
    // Monolithic sha512 and the sha512 empty blob.
    for data in [b"config".to_vec(), Vec::new()] {
        let resp = c
            .post(r.url(&format!("/v2/s5/blobs/uploads/?digest={}", sha512(&data))))
            .body(data.clone())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 201);
    }
    // A manifest whose descriptors are sha512, pushed by its sha512 digest.
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": sha512(b"config"), "size": 6},
        "layers": [{"mediaType": LAYER, "digest": d, "size": blob.len()}],
    }))
    .unwrap();
    let md = sha512(&m);
    let resp = put_manifest(&r, "s5", &md, MANIFEST, &m);
    assert_eq!(resp.status(), 201);
    assert_eq!(header(&resp, "docker-content-digest"), md);
    let got = c
        .get(r.url(&format!("/v2/s5/manifests/{md}")))
        .send()
        .unwrap();
    assert_eq!(header(&got, "docker-content-digest"), md);
    assert_eq!(got.bytes().unwrap().as_ref(), m.as_slice());
    assert_eq!(
        c.delete(r.url(&format!("/v2/s5/manifests/{md}")))
            .send()
            .unwrap()
            .status(),
        202
    );
    assert_eq!(
        c.head(r.url(&format!("/v2/s5/manifests/{md}")))
            .send()
            .unwrap()
            .status(),
        404
    );
}

#[test]
fn mounts_across_repositories() {
    let r = Registry::start(OPEN);
    let c = http();
    let d = push_blob(&r, "src/repo", b"shared layer");
    let resp = c
        .post(r.url(&format!("/v2/dst/blobs/uploads/?mount={d}&from=src/repo")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(header(&resp, "location"), format!("/v2/dst/blobs/{d}"));
    assert_eq!(
        c.get(r.url(&format!("/v2/dst/blobs/{d}")))
            .send()
            .unwrap()
            .status(),
        200
    );
    // Without `from`: found where this client may read it.
    let resp = c
        .post(r.url(&format!("/v2/third/blobs/uploads/?mount={d}")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    // A blob that exists nowhere: an upload session instead (202), never 201.
    let missing = sha256(b"never pushed");
    let resp = c
        .post(r.url(&format!(
            "/v2/dst/blobs/uploads/?mount={missing}&from=src/repo"
        )))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert!(header(&resp, "location").starts_with("/v2/dst/blobs/uploads/"));
    // One copy on disk for three repositories.
    let copies = files_under(&r.root().join("blobs"))
        .into_iter()
        .filter(|p| p.ends_with(&d[7..]))
        .count();
    assert_eq!(copies, 1);
}

#[test]
fn manifests_indexes_and_bad_manifests() {
    let r = Registry::start(OPEN);
    let c = http();
    let (_, m1) = push_image(&r, "team/app/api", "one", "1");
    let (m2_body, m2) = push_image(&r, "team/app/api", "two", "2");
    // A manifest with no mediaType field: the Content-Type says.
    let config = push_blob(&r, "team/app/api", b"{}");
    let bare = serde_json::to_vec(&json!({"schemaVersion": 2, "config": {"mediaType": CONFIG, "digest": config, "size": 2}, "layers": []})).unwrap();
    assert_eq!(
        put_manifest(&r, "team/app/api", "bare", MANIFEST, &bare).status(),
        201
    );
    // An index of the two, with a custom field kept byte for byte.
    let index = format!(
        "{{\n\t\"schemaVersion\": 2,\n\t\"mediaType\": \"{INDEX}\",\n\t\"manifests\": [{{\"mediaType\":\"{MANIFEST}\",\"digest\":\"{m1}\",\"size\":1,\"platform\":{{\"os\":\"linux\",\"architecture\":\"amd64\"}}}},{{\"mediaType\":\"{MANIFEST}\",\"digest\":\"{m2}\",\"size\":{}}}],\n\t\"org.example.custom\": true\n}}",
        m2_body.len()
    );
    let resp = put_manifest(&r, "team/app/api", "multi", INDEX, index.as_bytes());
    assert_eq!(resp.status(), 201);
    let got = c
        .get(r.url("/v2/team/app/api/manifests/multi"))
        .send()
        .unwrap();
    assert_eq!(header(&got, "content-type"), INDEX);
    assert_eq!(got.bytes().unwrap().as_ref(), index.as_bytes());

    // A manifest of nearly 4 MiB is accepted; one over 4 MiB is not.
    let big_note = "x".repeat(10_000);
    let annotations: serde_json::Map<String, Value> = (0..410)
        .map(|i| (format!("org.example.n{i}"), json!(big_note)))
        .collect();
    let big = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": MANIFEST, "config": {"mediaType": CONFIG, "digest": config, "size": 2}, "layers": [], "annotations": annotations})).unwrap();
    assert!(
        big.len() > 4_000_000 && big.len() <= 4 * 1024 * 1024,
        "{}",
        big.len()
    );
    assert_eq!(
        put_manifest(&r, "team/app/api", "big", MANIFEST, &big).status(),
        201
    );
    let got = c
        .get(r.url("/v2/team/app/api/manifests/big"))
        .send()
        .unwrap();
    assert_eq!(got.bytes().unwrap().len(), big.len());
    let huge = [big.as_slice(), &vec![b' '; 200_000]].concat();
    let resp = put_manifest(&r, "team/app/api", "huge", MANIFEST, &huge);
    assert_eq!(resp.status(), 413);
    assert_eq!(error_code(resp), "SIZE_INVALID");
    // A method an endpoint does not take.
    let resp = c
        .post(r.url("/v2/team/app/api/manifests/one"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(error_code(resp), "UNSUPPORTED");

    // Bad manifests: the spec's codes, and nothing stored.
    let missing_layer = manifest(b"{}", &[b"not pushed"], None);
    let cases: Vec<(&str, Vec<u8>, &str, u16, &str)> = vec![
        ("missing-blob", missing_layer.clone(), MANIFEST, 400, "MANIFEST_BLOB_UNKNOWN"),
        ("malformed", b"{\"schemaVersion\": 2,".to_vec(), MANIFEST, 400, "MANIFEST_INVALID"),
        ("wrong-version", b"{\"schemaVersion\": 1}".to_vec(), MANIFEST, 400, "MANIFEST_INVALID"),
        ("type-mismatch", bare.clone(), INDEX, 400, "MANIFEST_INVALID"),
        ("not-json", b"\xff\xfe".to_vec(), MANIFEST, 400, "MANIFEST_INVALID"),
        (
            "index-of-missing",
            serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [{"mediaType": MANIFEST, "digest": sha256(b"x"), "size": 1}]})).unwrap(),
            INDEX,
            400,
            "MANIFEST_BLOB_UNKNOWN",
        ),
    ];
    for (tag, body, media_type, status, code) in cases {
        let resp = put_manifest(&r, "team/app/api", tag, media_type, &body);
        assert_eq!(resp.status(), status, "{tag}");
        assert_eq!(error_code(resp), code, "{tag}");
        assert_eq!(
            c.head(r.url(&format!("/v2/team/app/api/manifests/{tag}")))
                .send()
                .unwrap()
                .status(),
            404,
            "{tag}"
        );
    }
    // PUT by a digest that is not the body's.
    let mut spaced = bare.clone();
    spaced.extend_from_slice(b"  ");
    let resp = put_manifest(&r, "team/app/api", &sha256(&bare), MANIFEST, &spaced);
    assert_eq!(resp.status(), 400);
    assert_eq!(error_code(resp), "DIGEST_INVALID");
    assert_eq!(
        put_manifest(
            &r,
            "team/app/api",
            "sha256:baddigeststring",
            MANIFEST,
            &bare
        )
        .status(),
        400
    );
    let resp = put_manifest(&r, "team/app/api", "-bad-tag", MANIFEST, &bare);
    assert_eq!(resp.status(), 400);
    assert_eq!(error_code(resp), "TAG_INVALID");
    // Non-distributable layers need not be in the registry.
    let foreign = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "digest": sha256(b"elsewhere"), "size": 9, "urls": ["https://example.invalid/l"]}]})).unwrap();
    assert_eq!(
        put_manifest(&r, "team/app/api", "foreign", MANIFEST, &foreign).status(),
        201
    );
    // `?tag=` tags while pushing by digest.
    let resp = c
        .put(r.url(&format!(
            "/v2/team/app/api/manifests/{}?tag=t1&tag=t2",
            sha256(&bare)
        )))
        .header("Content-Type", MANIFEST)
        .body(bare.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let tags: Vec<String> = resp
        .headers()
        .get_all("oci-tag")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(tags, ["t1", "t2"]);
}

#[test]
fn names_are_validated() {
    let r = Registry::start(OPEN);
    let c = http();
    for bad in [
        "/v2/UPPER/tags/list",
        "/v2/a__-b/tags/list",
        "/v2/a%2Fb/tags/list",
        "/v2/a..b/blobs/uploads/",
    ] {
        let resp = c.get(r.url(bad)).send().unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
        assert_eq!(error_code(resp), "NAME_INVALID", "{bad}");
    }
    // `..` never reaches the filesystem: the URL is normalised or refused.
    let resp = c
        .post(r.url("/v2/a/%2e%2e/%2e%2e/escape/blobs/uploads/"))
        .send()
        .unwrap();
    assert!(
        resp.status() == 400 || resp.status() == 404,
        "{}",
        resp.status()
    );
    let long = "a".repeat(256);
    assert_eq!(
        c.get(r.url(&format!("/v2/{long}/tags/list")))
            .send()
            .unwrap()
            .status(),
        400
    );
    assert!(!r.root().join("escape").exists() && !r.dir.path().join("escape").exists());
}

#[test]
fn tags_catalog_and_pagination() {
    let r = Registry::start(OPEN);
    let c = http();
    let (m, _) = push_image(&r, "tagged", "base", "t");
    let mut all = vec!["base".to_string()];
    for t in [
        "test0", "test1", "test2", "test3", "TEST0", "TEST1", "TEST2", "TEST3",
    ] {
        assert_eq!(put_manifest(&r, "tagged", t, MANIFEST, &m).status(), 201);
        all.push(t.to_string());
    }
    all.sort();
    let list = |q: &str| {
        let resp = c
            .get(r.url(&format!("/v2/tagged/tags/list{q}")))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        let link = header(&resp, "link");
        let v: Value = resp.json().unwrap();
        assert_eq!(v["name"], "tagged");
        let tags: Vec<String> = serde_json::from_value(v["tags"].clone()).unwrap();
        (tags, link)
    };
    let (tags, link) = list("");
    assert_eq!(tags, all);
    assert!(link.is_empty());
    let (page, link) = list("?n=4");
    assert_eq!(page, all[..4]);
    assert_eq!(
        link,
        format!("</v2/tagged/tags/list?n=4&last={}>; rel=\"next\"", all[3])
    );
    let (page, _) = list(&format!("?n=4&last={}", all[3]));
    assert_eq!(page, all[4..8]);
    let (rest, _) = list(&format!("?last={}", all[3]));
    assert_eq!(rest, all[4..], "last without n: everything after it");
    let (none, link) = list("?n=0");
    assert!(none.is_empty() && link.is_empty());
    let resp = c.get(r.url("/v2/nothing/here/tags/list")).send().unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(error_code(resp), "NAME_UNKNOWN");
    push_image(&r, "another", "x", "a");
    let v: Value = c.get(r.url("/v2/_catalog")).send().unwrap().json().unwrap();
    assert_eq!(v["repositories"], json!(["another", "tagged"]));
    let resp = c.get(r.url("/v2/_catalog?n=1")).send().unwrap();
    assert_eq!(
        header(&resp, "link"),
        "</v2/_catalog?n=1&last=another>; rel=\"next\""
    );
}

#[test]
fn referrers_with_filtering() {
    let r = Registry::start(OPEN);
    let c = http();
    let (subject_body, subject) = push_image(&r, "refs", "subject", "s");
    let empty = push_blob(&r, "refs", b"{}");
    assert_eq!(
        empty,
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    );
    let artifact = |artifact_type: Option<&str>, note: &str, subject: &str| {
        let layer = push_blob(&r, "refs", note.as_bytes());
        let mut m = json!({
            "schemaVersion": 2, "mediaType": MANIFEST,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [{"mediaType": "application/octet-stream", "digest": layer, "size": note.len()}],
            "subject": {"mediaType": MANIFEST, "digest": subject, "size": subject_body.len()},
            "annotations": {"org.opencontainers.conformance.test": note},
        });
        if let Some(t) = artifact_type {
            m["artifactType"] = json!(t);
        }
        let body = serde_json::to_vec(&m).unwrap();
        let d = sha256(&body);
        let resp = put_manifest(&r, "refs", &d, MANIFEST, &body);
        assert_eq!(resp.status(), 201);
        assert_eq!(header(&resp, "oci-subject"), subject);
        d
    };
    let a1 = artifact(Some("application/vnd.example.sbom"), "sbom 1", &subject);
    let a2 = artifact(Some("application/vnd.example.sbom"), "sbom 2", &subject);
    let a3 = artifact(Some("application/vnd.example.sig"), "sig", &subject);
    // Without artifactType, the config's media type stands in.
    let a4 = artifact(None, "plain", &subject);
    // A subject that was never pushed is accepted.
    let ghost = sha256(b"missing content");
    let a5 = artifact(Some("application/vnd.example.sig"), "orphan", &ghost);

    let list = |path: &str| {
        let resp = c.get(r.url(path)).send().unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(header(&resp, "content-type"), INDEX);
        let filters = header(&resp, "oci-filters-applied");
        let v: Value = resp.json().unwrap();
        assert_eq!(v["schemaVersion"], 2);
        assert_eq!(v["mediaType"], INDEX);
        (v["manifests"].as_array().unwrap().clone(), filters)
    };
    let (all, filters) = list(&format!("/v2/refs/referrers/{subject}"));
    assert!(filters.is_empty());
    let digests: Vec<&str> = all.iter().map(|d| d["digest"].as_str().unwrap()).collect();
    for d in [&a1, &a2, &a3, &a4] {
        assert!(digests.contains(&d.as_str()), "{d} in {digests:?}");
    }
    assert_eq!(all.len(), 4);
    let plain = all.iter().find(|d| d["digest"] == a4.as_str()).unwrap();
    assert_eq!(plain["artifactType"], "application/vnd.oci.empty.v1+json");
    assert_eq!(
        plain["annotations"]["org.opencontainers.conformance.test"],
        "plain"
    );
    let (sboms, filters) = list(&format!(
        "/v2/refs/referrers/{subject}?artifactType=application/vnd.example.sbom"
    ));
    assert_eq!(filters, "artifactType");
    assert_eq!(sboms.len(), 2);
    assert!(sboms
        .iter()
        .all(|d| d["artifactType"] == "application/vnd.example.sbom"));
    let (orphans, _) = list(&format!("/v2/refs/referrers/{ghost}"));
    assert_eq!(orphans.len(), 1);
    assert_eq!(orphans[0]["digest"], a5.as_str());
    let (none, _) = list(&format!("/v2/no/such/repo/referrers/{}", sha256(b"z")));
    assert!(
        none.is_empty(),
        "an unknown subject, even in an unknown repo, lists nothing"
    );
    assert_eq!(
        c.get(r.url("/v2/refs/referrers/sha256:bad"))
            .send()
            .unwrap()
            .status(),
        400
    );
    // Deleting a referrer takes it off the list.
    assert_eq!(
        c.delete(r.url(&format!("/v2/refs/manifests/{a1}")))
            .send()
            .unwrap()
            .status(),
        202
    );
    let (after, _) = list(&format!("/v2/refs/referrers/{subject}"));
    assert_eq!(after.len(), 3);
}

#[test]
fn deletes() {
    let r = Registry::start(OPEN);
    let c = http();
    let (m, d) = push_image(&r, "del", "keep", "d");
    assert_eq!(put_manifest(&r, "del", "other", MANIFEST, &m).status(), 201);
    // A tag alone.
    assert_eq!(
        c.delete(r.url("/v2/del/manifests/other"))
            .send()
            .unwrap()
            .status(),
        202
    );
    assert_eq!(
        c.head(r.url("/v2/del/manifests/other"))
            .send()
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        c.head(r.url("/v2/del/manifests/keep"))
            .send()
            .unwrap()
            .status(),
        200
    );
    let resp = c.delete(r.url("/v2/del/manifests/other")).send().unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(error_code(resp), "MANIFEST_UNKNOWN");
    // By digest: its tags go too.
    assert_eq!(
        c.delete(r.url(&format!("/v2/del/manifests/{d}")))
            .send()
            .unwrap()
            .status(),
        202
    );
    assert_eq!(
        c.head(r.url(&format!("/v2/del/manifests/{d}")))
            .send()
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        c.head(r.url("/v2/del/manifests/keep"))
            .send()
            .unwrap()
            .status(),
        404
    );
    let v: Value = c
        .get(r.url("/v2/del/tags/list"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["tags"], json!([]));
    // Blobs.
    let b = push_blob(&r, "del", b"a blob to delete");
    assert_eq!(
        c.delete(r.url(&format!("/v2/del/blobs/{b}")))
            .send()
            .unwrap()
            .status(),
        202
    );
    assert_eq!(
        c.head(r.url(&format!("/v2/del/blobs/{b}")))
            .send()
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        c.delete(r.url(&format!("/v2/del/blobs/{b}")))
            .send()
            .unwrap()
            .status(),
        404
    );
}

#[test]
fn uploads_resume_after_a_crash_and_no_corrupt_blob_is_served() {
    let mut r = Registry::start(OPEN);
    let c = http();
    let blob: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let d = sha256(&blob);
    let loc = header(
        &c.post(r.url("/v2/crash/blobs/uploads/")).send().unwrap(),
        "location",
    );
    let resp = c
        .patch(r.url(&loc))
        .header("Content-Range", "0-999999")
        .body(blob[..1_000_000].to_vec())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202);
    r.restart();
    let status = c.get(r.url(&loc)).send().unwrap();
    assert_eq!(status.status(), 204, "the upload survives a restart");
    assert_eq!(header(&status, "range"), "0-999999");
    let resp = c
        .patch(r.url(&loc))
        .header("Content-Range", "1000000-2999999")
        .body(blob[1_000_000..].to_vec())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202);
    let resp = c.put(r.url(&format!("{loc}?digest={d}"))).send().unwrap();
    assert_eq!(resp.status(), 201);
    let got = c
        .get(r.url(&format!("/v2/crash/blobs/{d}")))
        .send()
        .unwrap();
    assert_eq!(sha256(&got.bytes().unwrap()), d);

    // SIGKILL while a large upload streams in: after the restart the
    // partial content is an upload, never a blob that is served.
    let big: Vec<u8> = (0..64_000_000u32).map(|i| (i % 241) as u8).collect();
    let big_digest = sha256(&big);
    let url = r.url(&format!("/v2/crash/blobs/uploads/?digest={big_digest}"));
    let uploads = r.root().join("uploads");
    let earlier = files_under(&uploads);
    let sender = std::thread::spawn(move || {
        let slow = futures_free_body(big);
        let _ = http().post(url).body(slow).send();
    });
    // Killed once the server has written part of it (it writes whole MiBs).
    common::wait_until(
        "the server to write part of the upload",
        std::time::Duration::from_secs(20),
        || {
            files_under(&uploads).iter().any(|p| {
                !earlier.contains(p)
                    && p.ends_with("data")
                    && std::fs::metadata(p).is_ok_and(|m| m.len() > 0)
            })
        },
    );
    r.restart();
    let _ = sender.join();
    let head = c
        .head(r.url(&format!("/v2/crash/blobs/{big_digest}")))
        .send()
        .unwrap();
    assert!(head.status() == 404 || head.status() == 200);
    if head.status() == 200 {
        let got = c
            .get(r.url(&format!("/v2/crash/blobs/{big_digest}")))
            .send()
            .unwrap();
        assert_eq!(
            sha256(&got.bytes().unwrap()),
            big_digest,
            "a served blob is whole"
        );
    }
    // Every stored blob matches its name.
    for p in files_under(&r.root().join("blobs")) {
        let data = std::fs::read(&p).unwrap();
        let name = p.file_name().unwrap().to_str().unwrap();
        assert_eq!(&sha256(&data)[7..], name, "{p:?}");
    }
}

/// A body that trickles out, so the server is mid-upload when killed.
fn futures_free_body(data: Vec<u8>) -> reqwest::blocking::Body {
    struct Slow {
        data: Vec<u8>,
        at: usize,
    }
    impl std::io::Read for Slow {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.at >= self.data.len() {
                return Ok(0);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
            let n = buf.len().min(64 * 1024).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }
    let len = data.len() as u64;
    reqwest::blocking::Body::sized(Slow { data, at: 0 }, len)
}

#[test]
fn health_and_metrics() {
    let r = Registry::start(OPEN);
    let c = http();
    assert_eq!(c.get(r.url("/health")).send().unwrap().status(), 200);
    push_image(&r, "m", "t", "m");
    let text = c.get(r.url("/metrics")).send().unwrap().text().unwrap();
    assert!(
        text.contains(
            "estiba_registry_requests_total{route=\"manifest\",method=\"PUT\",status=\"201\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("estiba_registry_bytes_received_total"));
    assert!(text.contains("estiba_registry_upload_sessions 0"));
    assert!(text.contains("estiba_registry_gc_runs_total 0"));
    // Access lines are structured: method, path, status, user.
    assert!(
        r.log()
            .contains("method=PUT path=/v2/m/manifests/t status=201"),
        "{}",
        r.log()
    );
}
