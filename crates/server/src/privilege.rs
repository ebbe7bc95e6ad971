//! Dropping root after the sockets are bound: `setgroups([])` → `setresgid` → `setresuid`, then a
//! check with `getresuid`/`getresgid`/`getgroups` that no way back to root is left (OpenSMTPD's
//! order; a `setuid` without `setgroups` would keep root's supplementary groups).

use crate::config::ServerSection;
use crate::listen::{lookup_group, lookup_user};
use nix::unistd::{getgroups, getresgid, getresuid, setgroups, setresgid, setresuid, Gid, Uid};

/// What the process runs as after [`drop_privileges`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
}

/// When running as root, switches to `server.user`/`server.group`. Refuses to keep running as root
/// unless the config explicitly says `user = "root"`. When not root, checks that no user other than
/// the current one is configured and does nothing.
pub fn drop_privileges(server: &ServerSection) -> Result<Identity, String> {
    let euid = Uid::effective();
    if !euid.is_root() {
        if let Some(name) = &server.user {
            let user = lookup_user(name)?;
            if user.uid != euid {
                return Err(format!(
                    "server.user = {name:?} but not started as root (running as uid {euid}); \
                     start as root or remove server.user"
                ));
            }
        }
        return Ok(Identity {
            uid: euid.as_raw(),
            gid: Gid::effective().as_raw(),
        });
    }
    let Some(name) = &server.user else {
        return Err(
            "started as root but server.user is not set: set the unprivileged user to \
                    run as (user = \"root\" keeps root, which is not advised)"
                .into(),
        );
    };
    let user = lookup_user(name)?;
    let gid = match &server.group {
        Some(g) => lookup_group(g)?,
        None => user.gid,
    };
    if user.uid.is_root() {
        tracing::warn!("server.user = {name:?}: running as root");
        return Ok(Identity {
            uid: 0,
            gid: Gid::effective().as_raw(),
        });
    }
    setgroups(&[]).map_err(|e| format!("setgroups: {e}"))?;
    setresgid(gid, gid, gid).map_err(|e| format!("setresgid({gid}): {e}"))?;
    setresuid(user.uid, user.uid, user.uid).map_err(|e| format!("setresuid({}): {e}", user.uid))?;

    let r = getresuid().map_err(|e| format!("getresuid: {e}"))?;
    let g = getresgid().map_err(|e| format!("getresgid: {e}"))?;
    let groups = getgroups().map_err(|e| format!("getgroups: {e}"))?;
    let uid_ok = [r.real, r.effective, r.saved]
        .iter()
        .all(|u| *u == user.uid);
    let gid_ok = [g.real, g.effective, g.saved].iter().all(|x| *x == gid);
    let groups_ok = groups.iter().all(|x| *x == gid);
    if !(uid_ok && gid_ok && groups_ok) {
        return Err(format!(
            "privilege drop to {name} did not hold: uids {:?}, gids {:?}, groups {groups:?}",
            (r.real, r.effective, r.saved),
            (g.real, g.effective, g.saved)
        ));
    }
    // Being able to get root back would make the whole drop worthless.
    if setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).is_ok() {
        return Err("privilege drop failed: root could be regained".into());
    }
    Ok(Identity {
        uid: user.uid.as_raw(),
        gid: gid.as_raw(),
    })
}
