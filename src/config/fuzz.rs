//! Fuzzing the config loader (issue 14): arbitrary text, and config files and
//! environment values built around a secret and then broken, must never panic the loader
//! and never put the secret into an error message. Bounded case counts keep this to
//! seconds in `cargo nextest run`.

use std::ffi::OsString;

use proptest::prelude::*;

use super::Config;

/// Cases per property: enough to hit every shape of document and break point many
/// times, few enough for a debug build on 2 cores to take seconds.
const CASES: u32 = 256;

/// A secret that cannot occur by chance in a key name or a message.
fn secret() -> impl Strategy<Value = String> {
    "Zq[0-9a-z]{10}"
}

/// A config document with the secret in one of the places secrets live, some other keys,
/// and a line or two that may be wrong.
fn document(secret: String) -> impl Strategy<Value = String> {
    let printer = prop_oneof![
        Just(format!(
            "[[printers]]\nid = \"b1\"\ntype = \"bambu\"\nhost = \"10.0.0.2\"\nserial = \"S1\"\naccess_code = \"{secret}\"\n"
        )),
        Just(format!(
            "[[printers]]\nid = \"p1\"\ntype = \"prusalink\"\nhost = \"10.0.0.3\"\nusername = \"maker\"\npassword = \"{secret}\"\n"
        )),
        Just(format!(
            "[[printers]]\nid = \"p2\"\ntype = \"octoprint\"\nhost = \"10.0.0.4\"\napi_key = \"{secret}\"\n"
        )),
        Just(format!(
            "[auth]\nenabled = true\napi_keys = [\"{secret}\"]\n"
        )),
        Just(format!(
            "[[printers]]\nid = \"b2\"\ntype = \"bambu\"\nhost = \"10.0.0.2\"\nserial = \"S1\"\naccess_code = \"{secret}\"\nport = \"{secret}\"\n"
        )),
        Just(format!("[server]\nbind = \"{secret}\"\n")),
        Just(format!("[monitoring]\ninterval = \"{secret}\"\n")),
        Just(format!("[database]\npath = [\"{secret}\"]\n")),
        Just(format!(
            "[[printers]]\nid = \"{secret} x\"\ntype = \"bambu\"\nhost = \"h\"\n"
        )),
        Just(format!(
            "[[printers]]\nid = \"q\"\ntype = \"{secret}\"\nhost = \"h\"\n"
        )),
    ];
    let other = prop_oneof![
        Just("[server]\nbind = \"127.0.0.1:0\"\n".to_owned()),
        Just("[monitoring]\ninterval = 5\n".to_owned()),
        Just("[job_creation]\nauto_create = false\n".to_owned()),
        Just("[server]\nbnid = 1\n".to_owned()),
        Just(String::new()),
    ];
    (other.clone(), printer.clone(), printer, other)
        .prop_map(|(a, b, c, d)| format!("{a}{b}{c}{d}"))
}

/// Breaks a document: cut it somewhere, or insert stray characters (never a newline or
/// `=`, which could turn the secret into a key: key names are reported, values not).
fn broken(doc: String) -> impl Strategy<Value = String> {
    let len = doc.len();
    let doc2 = doc.clone();
    prop_oneof![
        Just(doc.clone()),
        (0..=len).prop_map(move |at| cut(&doc, at)),
        (0..=len, "[\"'\\[\\]{},#\\\\ a-z0-9.]{1,4}")
            .prop_map(move |(at, junk)| insert(&doc2, at, &junk)),
    ]
}

fn cut(s: &str, mut at: usize) -> String {
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    s[..at].to_owned()
}

fn insert(s: &str, at: usize, junk: &str) -> String {
    let head = cut(s, at);
    format!("{head}{junk}{}", &s[head.len()..])
}

fn load(doc: &str, env: Vec<(OsString, OsString)>) -> Result<Config, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("daemon.toml");
    std::fs::write(&path, doc).unwrap();
    Config::load_with_env(Some(&path), env)
        .map(|l| l.config)
        .map_err(|e| e.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = Config::from_toml_str(&text);
    }

    #[test]
    fn a_broken_file_never_echoes_a_secret(
        doc in secret().prop_flat_map(|s| document(s.clone()).prop_flat_map(broken).prop_map(move |d| (s.clone(), d)))
    ) {
        let (secret, doc) = doc;
        if let Err(e) = load(&doc, Vec::new()) {
            prop_assert!(!e.contains(&secret), "secret in {e:?}\nfrom:\n{doc}");
        }
    }

    #[test]
    fn environment_values_are_never_echoed(
        s in secret(),
        var in prop_oneof![
            Just("PRINTFARMD_SERVER__BIND"),
            Just("PRINTFARMD_MONITORING__INTERVAL"),
            Just("PRINTFARMD_JOB_CREATION__AUTO_CREATE"),
            Just("PRINTFARMD_AUTH__API_KEYS"),
            Just("PRINTFARMD_AUTH__ENABLED"),
            Just("PRINTFARMD_DATABASE__PATH"),
            Just("PRINTFARMD_SERVER__BNID"),
            Just("PRINTFARMD_SERVR__BIND"),
            Just("PRINTFARMD_PRINTERS__0__ACCESS_CODE"),
            Just("JOB_CREATION_AUTO_CREATE"),
        ],
        shape in prop_oneof![
            Just("{}"), Just("[{}]"), Just("[\"{}\"]"), Just("\"{}"), Just("{} {}"),
            Just("{{k = \"{}\"}}"), Just("[1, \"{}\"]"), Just("{}.5"),
        ],
    ) {
        let value = shape.replace("{}", &s);
        let env = vec![(OsString::from(var), OsString::from(&value))];
        if let Err(e) = load("[auth]\nenabled = true\n", env) {
            prop_assert!(!e.contains(&s), "secret in {e:?} from {var}={value}");
        }
    }
}
