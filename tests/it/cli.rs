//! The `cip` binary as a user runs it.

use std::process::Command;

use crate::helpers::TestLake;

fn cip() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cip"))
}

#[test]
fn ingest_json_summary_and_exit_codes() {
    let t = TestLake::new();
    t.land("carriers/c.csv", "tenant_id,carrier_id,name\nt1,K1,Harbor Mutual\nt1,K2,\nt2,K1,Plains Casualty\n");
    let out = cip()
        .args(["ingest", "--json", "--landing"])
        .arg(t.landing_path())
        .arg("--lake")
        .arg(t.lake_url())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let carriers = &summary["entities"]["carriers"];
    assert_eq!(carriers["read"], 3);
    assert_eq!(carriers["landed"], 2);
    assert_eq!(carriers["rejected"], 1);
    assert_eq!(carriers["rejected_by_reason"]["missing_value"], 1);
    assert_eq!(summary["snapshot"], 1);
    assert_eq!(summary["published"], true);
    assert!(summary["rows_per_sec"].as_f64().unwrap() > 0.0);

    // Nothing to ingest: non-zero exit and a message naming the problem.
    let empty = TestLake::new();
    std::fs::create_dir_all(empty.landing_path()).unwrap();
    let out = cip()
        .args(["ingest", "--landing"])
        .arg(empty.landing_path())
        .arg("--lake")
        .arg(empty.lake_url())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no landing files found"));
}

#[test]
fn generate_is_deterministic_for_a_seed() {
    let t = TestLake::new();
    let run = |out: &std::path::Path| {
        let status = cip()
            .args(["generate", "--policies", "500", "--seed", "3", "--tenants", "2", "--out"])
            .arg(out)
            .status()
            .unwrap();
        assert!(status.success());
    };
    let (a, b) = (t.dir.path().join("a"), t.dir.path().join("b"));
    run(&a);
    run(&b);
    let policies = |root: &std::path::Path| {
        let mut files: Vec<_> = std::fs::read_dir(root.join("policies")).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        files.iter().map(|f| std::fs::read(f).unwrap()).collect::<Vec<_>>()
    };
    assert!(!policies(&a).is_empty());
    assert_eq!(policies(&a), policies(&b));
    assert!(t.dir.path().join("a-truth/rejects.csv").is_file());
    // A second run into the same folder replaces it; a foreign folder is refused.
    run(&a);
    crate::helpers::write(&t.dir.path().join("mine/notes.txt"), b"keep me");
    let status = cip().args(["generate", "--policies", "10", "--out"]).arg(t.dir.path().join("mine")).status().unwrap();
    assert!(!status.success());
    assert!(t.dir.path().join("mine/notes.txt").is_file());
}

#[test]
fn keys_are_created_listed_and_revoked_from_the_command_line() {
    let t = TestLake::new();
    let lake = t.lake_url();
    let out = cip()
        .args([
            "keys",
            "create",
            "--tenant",
            "t9",
            "--scopes",
            "analytics:read,reports:write",
            "--env",
            "test",
            "--lake",
        ])
        .arg(&lake)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("cipk_test_") && key.len() == 42, "{key}");
    let id = &key[10..18];
    // `--lake` may also come before the action.
    let out = cip().args(["keys", "--lake"]).arg(&lake).arg("list").output().unwrap();
    let listed = String::from_utf8(out.stdout).unwrap();
    assert!(listed.starts_with(&format!("{id}  t9")), "{listed}");
    assert!(listed.contains("active") && listed.contains("analytics:read,reports:write"), "{listed}");
    assert!(!listed.contains(&key[10..]), "the key itself is never shown again");
    assert!(cip().args(["keys", "revoke", id, "--lake"]).arg(&lake).status().unwrap().success());
    let out = cip().args(["keys", "list", "--lake"]).arg(&lake).output().unwrap();
    assert!(String::from_utf8(out.stdout).unwrap().contains("revoked"));
    assert!(!cip().args(["keys", "revoke", "nosuchid", "--lake"]).arg(&lake).status().unwrap().success());
}

#[test]
fn lake_commands_print_history_files_and_stats() {
    let t = TestLake::new();
    t.land("carriers/c.csv", "tenant_id,carrier_id,name\nt1,K1,Harbor Mutual\nt2,K1,Plains Casualty\n");
    let ingest =
        cip().args(["ingest", "--json", "--landing"]).arg(t.landing_path()).arg("--lake").arg(t.lake_url()).output();
    assert!(ingest.unwrap().status.success());
    let run = |args: &[&str]| {
        let out = cip().args(["lake"]).args(args).arg("--lake").arg(t.lake_url()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let history = run(&["history"]);
    let line = history.lines().nth(1).expect("one version");
    assert!(line.trim_start().starts_with("1 ") && line.contains(" ingest "), "{history}");
    assert!(line.contains("carriers@0 (2, 2)"), "{history}");
    let files: serde_json::Value = serde_json::from_str(&run(&["files"])).unwrap();
    assert_eq!(files["version"], 1);
    let tenants: Vec<&str> =
        files["tables"]["carriers"].as_array().unwrap().iter().map(|f| f["tenant_id"].as_str().unwrap()).collect();
    assert_eq!(tenants, ["t1", "t2"]);
    let stats: serde_json::Value = serde_json::from_str(&run(&["stats", "--json"])).unwrap();
    assert_eq!(stats["tables"][0]["table"], "carriers");
    assert_eq!(stats["tables"][0]["rows"], 2);
    // A short vacuum retention is refused without --force.
    let out = cip().args(["lake", "vacuum", "--retain-hours", "1", "--lake"]).arg(t.lake_url()).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
}
