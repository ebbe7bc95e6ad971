//! Expansion: virtual lookup order, cleanup's recursion, local(8)'s aliases, owners, includes.

use crate::tests_tables::{settings, Fixture};
use crate::*;
use proptest::prelude::*;

struct Setup {
    f: Fixture,
    s: Settings,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            f: Fixture::new(),
            s: settings(),
        }
    }

    fn aliases(mut self, text: &str) -> Setup {
        let p = self
            .f
            .user_file(&format!("aliases{}", self.s.alias_maps.len()), text);
        self.s.alias_maps.push(p);
        self
    }

    fn virt(mut self, kind: &str, text: &str) -> Setup {
        let p = self
            .f
            .file(&format!("virtual{}", self.s.virtual_alias_maps.len()), text);
        self.s
            .virtual_alias_maps
            .push(format!("{kind}{}", p.display()));
        self
    }

    fn with(mut self, change: impl FnOnce(&mut Settings)) -> Setup {
        change(&mut self.s);
        self
    }

    fn load(&self) -> Aliases {
        match Aliases::load(self.s.clone()) {
            Ok(a) => a,
            Err(e) => panic!("load: {e:?}"),
        }
    }

    /// The addresses an address expands to (no senders, no failures expected).
    fn addrs(&self, address: &str) -> Vec<String> {
        let x = self.load().expand(address).expect("expand");
        assert!(x.failures.is_empty(), "{:?}", x.failures);
        x.targets
            .into_iter()
            .map(|(_, t)| match t {
                Target::Address(a) => a,
                other => format!("{other:?}"),
            })
            .collect()
    }
}

fn v(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn no_tables_bare_names_and_domain_case() {
    let s = Setup::new();
    assert_eq!(s.addrs("Bob"), v(&["Bob@example.org"]));
    assert_eq!(s.addrs("Bob@EXAMPLE.Net"), v(&["Bob@example.net"]));
    assert_eq!(s.addrs("bob@example.net."), v(&["bob@example.net"]));
}

#[test]
fn virtual_result_keeps_case_and_bare_names_get_myorigin() {
    let s = Setup::new().virt("", "info@shop.test  Alice@Remote.Test, sales\n");
    assert_eq!(
        s.addrs("INFO@shop.test"),
        v(&["Alice@Remote.Test", "sales@example.org"])
    );
}

#[test]
fn virtual_lookup_order_and_extension_propagation() {
    let table = "joe+exact@shop.test exact@r.test\njoe@shop.test joe@r.test\n\
                 @shop.test catchall@r.test\n";
    let s = Setup::new().virt("", table);
    assert_eq!(s.addrs("joe+exact@shop.test"), v(&["exact@r.test"]));
    assert_eq!(s.addrs("joe+x@shop.test"), v(&["joe+x@r.test"]));
    assert_eq!(s.addrs("ann+x@shop.test"), v(&["catchall@r.test"]));
    let off = Setup::new()
        .virt("", table)
        .with(|s| s.propagate_unmatched_extensions = false);
    assert_eq!(off.addrs("joe+x@shop.test"), v(&["joe@r.test"]));
    let nodelim = Setup::new()
        .virt("", table)
        .with(|s| s.recipient_delimiter.clear());
    assert_eq!(nodelim.addrs("joe+x@shop.test"), v(&["catchall@r.test"]));
}

#[test]
fn bare_user_keys_only_for_local_domains() {
    let s = Setup::new().virt("", "kim kim@r.test\nlee+tag lee-tag@r.test\n");
    assert_eq!(s.addrs("kim@example.org"), v(&["kim@r.test"]));
    assert_eq!(s.addrs("kim@localhost"), v(&["kim@r.test"]));
    assert_eq!(s.addrs("kim@elsewhere.test"), v(&["kim@elsewhere.test"]));
    assert_eq!(s.addrs("kim+x@example.org"), v(&["kim+x@r.test"]));
    assert_eq!(s.addrs("lee+tag@example.org"), v(&["lee-tag@r.test"]));
}

#[test]
fn at_domain_result_keeps_the_user() {
    let s = Setup::new().virt("", "@old.test @new.test\nmax@old2.test @new.test\n");
    assert_eq!(s.addrs("Eve+x@old.test"), v(&["Eve+x@new.test"]));
    assert_eq!(s.addrs("max+y@old2.test"), v(&["max+y@new.test"]));
}

#[test]
fn regexp_sees_the_whole_address_only() {
    let s = Setup::new()
        .virt(
            "regexp:",
            "/^sam\\+list@/ list@r.test\n/^sam@/ sam@r.test\n",
        )
        .with(|s| s.alias_domains.push("x.test".into()));
    assert_eq!(s.addrs("sam+list@x.test"), v(&["list@r.test"]));
    // mail_addr_find gives regexp tables the full address only: sam+other@ is not stripped.
    assert_eq!(s.addrs("sam+other@x.test"), v(&["sam+other@x.test"]));
    assert_eq!(s.addrs("sam@x.test"), v(&["sam@r.test"]));
}

#[test]
fn tables_are_searched_per_query_form() {
    // user@domain in the second table beats @domain in the first.
    let s = Setup::new()
        .virt("", "@d.test first@r.test\n")
        .virt("", "u@d.test second@r.test\n");
    assert_eq!(s.addrs("u@d.test"), v(&["second@r.test"]));
    assert_eq!(s.addrs("w@d.test"), v(&["first@r.test"]));
}

#[test]
fn self_reference_stays_final() {
    let s = Setup::new().virt("", "a@d.test a@d.test, b@d.test\nb@d.test c@r.test\n");
    assert_eq!(s.addrs("a@d.test"), v(&["a@d.test", "c@r.test"]));
}

#[test]
fn virtual_recursion_expands_results_again() {
    let s = Setup::new().virt(
        "",
        "a@d.test b@d.test\nb@d.test c@d.test, z@r.test\nc@d.test y@r.test\n",
    );
    assert_eq!(s.addrs("a@d.test"), v(&["y@r.test", "z@r.test"]));
}

#[test]
fn virtual_loop_hits_the_recursion_limit() {
    let s = Setup::new()
        .virt("", "a@d.test b@d.test\nb@d.test a@d.test\n")
        .with(|s| s.recursion_limit = 10);
    let e = s.load().expand("a@d.test").expect_err("loop");
    assert_eq!(
        e,
        ExpandError::RecursionLimit {
            address: "a@d.test".into()
        }
    );
    assert!(!e.is_permanent());
    assert_eq!(e.status(), "4.6.0");
}

#[test]
fn recursion_limit_counts_the_lookups_of_one_chain() {
    // cleanup_map1n counts every lookup of a chain, the last (unsuccessful) one included:
    // three mappings need a limit of four.
    let s = Setup::new()
        .virt(
            "",
            "a@d.test b@d.test\nb@d.test c@d.test\nc@d.test d@r.test\n",
        )
        .with(|s| s.recursion_limit = 4);
    assert_eq!(s.addrs("a@d.test"), v(&["d@r.test"]));
    let tight = Setup::new()
        .virt(
            "",
            "a@d.test b@d.test\nb@d.test c@d.test\nc@d.test d@r.test\n",
        )
        .with(|s| s.recursion_limit = 3);
    assert!(matches!(
        tight.load().expand("a@d.test"),
        Err(ExpandError::RecursionLimit { .. })
    ));
}

#[test]
fn expansion_limit_is_on_the_number_of_addresses() {
    let list: Vec<String> = (0..5).map(|i| format!("m{i}@r.test")).collect();
    let table = format!("big@d.test {}\n", list.join(", "));
    let s = Setup::new()
        .virt("", &table)
        .with(|s| s.expansion_limit = 5);
    assert_eq!(s.addrs("big@d.test").len(), 5);
    let s = Setup::new()
        .virt("", &table)
        .with(|s| s.expansion_limit = 4);
    let e = s.load().expand("big@d.test").expect_err("limit");
    assert!(matches!(e, ExpandError::ExpansionLimit { .. }));
    assert!(e.to_string().contains("expansion size for big@d.test"));
}

#[test]
fn duplicates_are_removed_case_insensitively_in_first_seen_order() {
    let s = Setup::new().virt("", "l@d.test b@r.test, A@r.test, B@R.TEST, a@r.test\n");
    assert_eq!(s.addrs("l@d.test"), v(&["b@r.test", "A@r.test"]));
}

#[test]
fn empty_regexp_result_defers() {
    let s = Setup::new().virt("regexp:", "/^(x*)y@/ $1\n");
    let e = s.load().expand("y@d.test").expect_err("empty");
    assert!(matches!(e, ExpandError::LookupFailed { .. }), "{e:?}");
}

#[test]
fn aliases_apply_to_local_domains_and_recurse() {
    let s = Setup::new()
        .aliases("postmaster: root\nroot: Alice, bob@remote.test\nalice: alice.smith@mail.test\n");
    assert_eq!(
        s.addrs("Postmaster"),
        v(&["alice.smith@mail.test", "bob@remote.test"])
    );
    assert_eq!(s.addrs("root@localhost").len(), 2);
    assert_eq!(s.addrs("root@remote.test"), v(&["root@remote.test"]));
    assert_eq!(s.addrs("MAILER-DAEMON"), v(&["MAILER-DAEMON@example.org"]));
}

#[test]
fn alias_naming_itself_delivers_to_the_mailbox() {
    let s = Setup::new().aliases("ann: ann, copy@remote.test\n");
    assert_eq!(s.addrs("ann"), v(&["ann@example.org", "copy@remote.test"]));
}

#[test]
fn alias_loop_bounces_that_branch() {
    let s = Setup::new().aliases("a: b, keep@remote.test\nb: a\n");
    let x = s.load().expand("a").expect("expand");
    assert_eq!(
        x.targets,
        vec![(None, Target::Address("keep@remote.test".into()))]
    );
    assert_eq!(x.failures.len(), 1);
    assert!(matches!(x.failures[0], ExpandError::NestingLimit { .. }));
    assert!(x.failures[0].is_permanent());
    assert_eq!(x.failures[0].status(), "5.4.6");
}

#[test]
fn alias_extension_lookup_without_propagation() {
    let s = Setup::new().aliases("bob: robert@remote.test\nbob+news: news@remote.test\n");
    assert_eq!(s.addrs("bob+news"), v(&["news@remote.test"]));
    // Postfix's default propagate_unmatched_extensions has no "alias" class.
    assert_eq!(s.addrs("bob+other"), v(&["robert@remote.test"]));
    assert_eq!(s.addrs("carl+x"), v(&["carl+x@example.org"]));
}

#[test]
fn alias_keys_are_case_insensitive_and_quoted_names_work() {
    let s = Setup::new().aliases("Sales: \"Jo Ann\"@remote.test\n\"a b\": c@remote.test\n");
    assert_eq!(s.addrs("SALES@Example.ORG"), v(&["Jo Ann@remote.test"]));
    assert_eq!(s.addrs("a b@example.org"), v(&["c@remote.test"]));
}

#[test]
fn owner_alias_changes_the_sender() {
    let s =
        Setup::new().aliases("list: a@remote.test, b\nowner-list: admin\nplain: c@remote.test\n");
    let x = s.load().expand("list").expect("expand");
    let owner = Some("owner-list@example.org".to_owned());
    assert_eq!(
        x.targets,
        vec![
            (owner.clone(), Target::Address("a@remote.test".into())),
            (owner, Target::Address("b@example.org".into())),
        ]
    );
    let x = s.load().expand("plain").expect("expand");
    assert_eq!(x.targets[0].0, None);
}

#[test]
fn remote_alias_targets_go_through_virtual_again() {
    let s = Setup::new()
        .aliases("fwd: x@remote.test\n")
        .virt("", "x@remote.test y@other.test\n");
    assert_eq!(s.addrs("fwd"), v(&["y@other.test"]));
}

#[test]
fn virtual_results_in_local_domains_get_aliases() {
    let s = Setup::new()
        .aliases("team: t1@remote.test, t2@remote.test\n")
        .virt("", "team@virt.test team\n");
    assert_eq!(
        s.addrs("team@virt.test"),
        v(&["t1@remote.test", "t2@remote.test"])
    );
}

#[test]
fn include_files_expand_and_loop_back_to_the_list() {
    let s = Setup::new();
    let inc = s.f.file("members", "# members\nm1@remote.test, m2\nlist\n");
    let s = s.aliases(&format!("list: :include:{}\n", inc.display()));
    let x = s.load().expand("list").expect("expand");
    let got: Vec<&Target> = x.targets.iter().map(|(_, t)| t).collect();
    assert_eq!(
        got,
        vec![
            &Target::Address("m1@remote.test".into()),
            &Target::Address("m2@example.org".into())
        ]
    );
    // The list names itself: forwarded, then Delivered-To stops it (Postfix's bounce).
    assert_eq!(
        x.failures,
        vec![ExpandError::ForwardingLoop {
            address: "list@example.org".into()
        }]
    );
}

#[test]
fn unusable_include_bounces_its_branch() {
    let s = Setup::new();
    let missing = s.f.path().join("nope");
    let s = s.aliases(&format!(
        "l: :include:{}, other@remote.test\n",
        missing.display()
    ));
    let a = s.load();
    assert!(a.warnings()[0].message.contains(":include: file unusable"));
    let x = a.expand("l").expect("expand");
    assert_eq!(x.targets.len(), 1);
    assert!(matches!(x.failures[0], ExpandError::BadInclude { .. }));
    assert_eq!(x.failures[0].status(), "5.3.5");
}

#[test]
fn commands_and_files_carry_the_owner() {
    let s = Setup::new()
        .aliases("prog: \"|/usr/bin/filter -x\", /var/spool/archive, prog\n")
        .with(|s| {
            s.allow_mail_to_commands = true;
            s.allow_mail_to_files = true;
        });
    let a = s.load();
    let meta = std::fs::metadata(&s.s.alias_maps[0]).expect("stat");
    let uid = std::os::unix::fs::MetadataExt::uid(&meta);
    let x = a.expand("prog").expect("expand");
    assert_eq!(x.targets.len(), 3, "{:?}", x.targets);
    match &x.targets[0].1 {
        Target::Command {
            command,
            uid: u,
            alias,
            ..
        } => {
            assert_eq!(command, "/usr/bin/filter -x");
            assert_eq!(*u, uid);
            assert_eq!(alias, "prog");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&x.targets[1].1, Target::File { path, .. } if path.as_os_str() == "/var/spool/archive")
    );
    assert_eq!(x.targets[2].1, Target::Address("prog@example.org".into()));
}

#[test]
fn delimiter_sets_and_unsplit_names() {
    let s = Setup::new()
        .aliases("owner-x: a@r.test\nx-request: b@r.test\nuser: u@r.test\n")
        .with(|s| s.recipient_delimiter = "+-".into());
    assert_eq!(s.addrs("user-tag"), v(&["u@r.test"]));
    assert_eq!(s.addrs("user+tag"), v(&["u@r.test"]));
    // owner_request_special: owner-X and X-request are not split at '-'.
    assert_eq!(s.addrs("owner-x"), v(&["a@r.test"]));
    assert_eq!(s.addrs("x-request"), v(&["b@r.test"]));
}

#[test]
fn null_username_bounces() {
    let s = Setup::new();
    let x = s.load().expand("@example.org").expect("expand");
    assert!(x.targets.is_empty());
    assert!(matches!(x.failures[0], ExpandError::NullUsername { .. }));
}

#[test]
fn display_texts() {
    let e = ExpandError::AliasLoop { alias: "a".into() };
    assert_eq!(e.to_string(), "alias database loop for a");
    let e = ExpandError::ForwardingLoop {
        address: "l@d".into(),
    };
    assert_eq!(e.to_string(), "mail forwarding loop for l@d");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_tables_never_panic(
        aliases in "[a-z:,|\"#@<>()\\[\\] \n\t/+.-]{0,200}",
        virt in "[a-z@+., \n\"<>!]{0,200}",
        re in "[a-z/!$()\\[\\]{}^*+?.|\\\\ \nifend0-9]{0,200}",
        addr in "[a-zA-Z@+.\"\\\\ -]{0,30}",
    ) {
        let f = Fixture::new();
        let mut s = settings();
        s.alias_maps = vec![f.file("a", &aliases)];
        s.virtual_alias_maps = vec![
            f.file("v", &virt).display().to_string(),
            format!("regexp:{}", f.file("r", &re).display()),
        ];
        s.recursion_limit = 50;
        if let Ok(a) = Aliases::load(s) {
            let _ = a.expand(&addr);
            let _ = a.lookup_one(&addr);
            let _ = a.check();
        }
    }
}
