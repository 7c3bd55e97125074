//! Interop: the Bambu driver against Debian's mosquitto, a broker it was not written
//! with, configured like a printer (TLS with a self-signed certificate, user `bblp` and a
//! password file). Skipped, with a note, where mosquitto is not installed (`.ci/run`
//! installs it).

mod printers_support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use printers_support::*;
use printfarmd::config::Secret;
use printfarmd::domain::PrinterType;
use printfarmd::printers::bambu::tls::fingerprint;
use printfarmd::printers::{ConnectionState as C, Stop, start_printer_tuned};

const MOSQUITTO: &str = "/usr/sbin/mosquitto";
const MOSQUITTO_PASSWD: &str = "/usr/bin/mosquitto_passwd";
const CODE: &str = "31415926";

#[actix::test]
async fn mosquitto_refuses_a_wrong_code_and_accepts_the_right_one() {
    if !Path::new(MOSQUITTO).exists() || !Path::new(MOSQUITTO_PASSWD).exists() {
        eprintln!("skipped: {MOSQUITTO} is not installed (apt-get install mosquitto)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(d.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(d.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let status = std::process::Command::new(MOSQUITTO_PASSWD)
        .args(["-c", "-b"])
        .arg(d.join("passwd"))
        .args(["bblp", CODE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "mosquitto_passwd failed");
    // mosquitto started as root drops to its own user: let that user read the files.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        for f in ["cert.pem", "key.pem", "passwd"] {
            std::fs::set_permissions(d.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let conf = format!(
        "listener {port} 127.0.0.1\ncertfile {c}\nkeyfile {k}\nallow_anonymous false\npassword_file {p}\npersistence false\nlog_dest stderr\n",
        c = d.join("cert.pem").display(),
        k = d.join("key.pem").display(),
        p = d.join("passwd").display(),
    );
    std::fs::write(d.join("mosquitto.conf"), conf).unwrap();
    let mut broker = tokio::process::Command::new(MOSQUITTO)
        .arg("-c")
        .arg(d.join("mosquitto.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Wait until it listens (bounded by the guard).
    let deadline = tokio::time::Instant::now() + GUARD;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "mosquitto did not start listening"
        );
        if let Ok(Some(st)) = broker.try_wait() {
            panic!("mosquitto exited: {st}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (sink, mut ev) = collector();
    let (_t, rx) = settings(30);
    let mut wrong = config_at("wrong_code", PrinterType::Bambu, port);
    wrong.access_code = Some(Secret::new("27182818"));
    let a1 = start_printer_tuned(wrong, None, rx.clone(), sink.clone(), fast());
    let right = {
        let mut c = config_at("right_code", PrinterType::Bambu, port);
        c.access_code = Some(Secret::new(CODE));
        c
    };
    let a2 = start_printer_tuned(right, None, rx, sink, fast());

    let s = ev
        .wait_for("wrong_code", "auth failed", |s| {
            s.connection == C::AuthFailed
        })
        .await;
    assert!(s.last_error.unwrap().contains("access code"));
    ev.wait_for("right_code", "connected", |s| s.connection == C::Connected)
        .await;
    ev.drain_ready();
    let fp = fingerprint(cert.cert.der());
    assert!(
        ev.certificates
            .iter()
            .any(|(id, f)| id.as_str() == "right_code" && *f == fp),
        "the broker's certificate is reported for pinning: {:?}",
        ev.certificates
    );
    assert!(
        !ev.certificates
            .iter()
            .any(|(id, _)| id.as_str() == "wrong_code"),
        "a refused login pins nothing"
    );
    a1.do_send(Stop);
    a2.do_send(Stop);
    let _ = broker.kill().await;
}
