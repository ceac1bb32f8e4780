//! The cluster lab's network: each authority process in a network namespace of its own, as if
//! on a machine of its own, so a fault can cut one off the network while it keeps running.
//!
//! Two bridges on this machine stand for two networks. On the *public* one
//! (`10.N.1.0/24`, this machine at `.1`) clients reach the processes; on the *data* one
//! (`10.N.2.0/24`, this machine at `.1`, where Postgres and NATS listen) the processes reach
//! their database and each other. Process slot `i` sits at `.(10 + i)` on both, through a veth
//! pair per network. [`LabNetwork::cut`] takes a slot's data link down: the process and its
//! clients still talk, but it hears neither Postgres nor NATS, as in a partition between a
//! rack and the database; [`LabNetwork::heal`] puts it back. Nothing is dropped by a filter:
//! packets go into a link without a carrier, and TCP retransmits them once it has one again.
//!
//! Making namespaces needs root (and a kernel with them); [`LabNetwork::build`] says why not
//! where it cannot. Everything it made is deleted when it is dropped. Names carry this
//! process's id, so two labs on one machine never share a link.

use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};

/// The namespaces, bridges and links of one lab; taken down when dropped.
pub struct LabNetwork {
    /// `N` in the subnets, and the tag in every name.
    octet: u8,
    tag: u32,
    slots: usize,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).stdout(Stdio::null()).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("`ip {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl LabNetwork {
    /// Makes the two networks and `slots` namespaces, each linked to both.
    pub fn build(slots: usize) -> Result<LabNetwork, String> {
        let tag = std::process::id();
        let network = LabNetwork { octet: 200 + (tag % 50) as u8, tag, slots };
        network.tear_down();
        for (bridge, subnet) in [(network.bridge('p'), 1), (network.bridge('d'), 2)] {
            ip(&["link", "add", &bridge, "type", "bridge"])?;
            ip(&["addr", "add", &format!("10.{}.{subnet}.1/24", network.octet), "dev", &bridge])?;
            ip(&["link", "set", &bridge, "up"])?;
        }
        for slot in 0..slots {
            let namespace = network.namespace(slot);
            ip(&["netns", "add", &namespace])?;
            ip(&["-n", &namespace, "link", "set", "lo", "up"])?;
            for (kind, inside, subnet) in [('p', "public", 1), ('d', "data", 2)] {
                let outside = network.link(kind, slot);
                ip(&["link", "add", &outside, "type", "veth", "peer", "name", inside, "netns", &namespace])?;
                ip(&["link", "set", &outside, "master", &network.bridge(kind)])?;
                ip(&["link", "set", &outside, "up"])?;
                let address = format!("10.{}.{subnet}.{}/24", network.octet, 10 + slot);
                ip(&["-n", &namespace, "addr", "add", &address, "dev", inside])?;
                ip(&["-n", &namespace, "link", "set", inside, "up"])?;
            }
        }
        Ok(network)
    }

    /// This machine's address on the data network, where Postgres and NATS listen.
    pub fn data_host(&self) -> IpAddr {
        IpAddr::from([10, self.octet, 2, 1])
    }

    /// The data network, for Postgres's list of trusted clients.
    pub fn data_network(&self) -> String {
        format!("10.{}.2.0/24", self.octet)
    }

    /// Where clients reach the process in `slot`.
    pub fn public_address(&self, slot: usize) -> IpAddr {
        IpAddr::from([10, self.octet, 1, 10 + slot as u8])
    }

    /// A command running `program` inside `slot`'s namespace.
    pub fn command(&self, slot: usize, program: &Path) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("ip");
        command.args(["netns", "exec", &self.namespace(slot)]).arg(program);
        command
    }

    /// Cuts `slot` off the data network (Postgres and NATS); its clients still reach it.
    pub fn cut(&self, slot: usize) -> Result<(), String> {
        ip(&["link", "set", &self.link('d', slot), "down"])
    }

    /// Puts `slot` back on the data network.
    pub fn heal(&self, slot: usize) -> Result<(), String> {
        ip(&["link", "set", &self.link('d', slot), "up"])
    }

    fn namespace(&self, slot: usize) -> String {
        format!("ens-lab-{}-{slot}", self.tag)
    }

    /// A bridge's name (at most 15 bytes, as the kernel wants).
    fn bridge(&self, kind: char) -> String {
        format!("el{}{kind}", self.tag)
    }

    /// The outside end of `slot`'s link to a network.
    fn link(&self, kind: char, slot: usize) -> String {
        format!("el{}{kind}{slot}", self.tag)
    }

    fn tear_down(&self) {
        let quiet = |args: &[&str]| {
            let _ = Command::new("ip").args(args).stdout(Stdio::null()).stderr(Stdio::null()).status();
        };
        // A link's outside end goes at once (and its inside end with it); a namespace's own
        // links would go only when the kernel gets round to freeing the namespace.
        for slot in 0..self.slots {
            for kind in ['p', 'd'] {
                quiet(&["link", "del", &self.link(kind, slot)]);
            }
            quiet(&["netns", "del", &self.namespace(slot)]);
        }
        for kind in ['p', 'd'] {
            quiet(&["link", "del", &self.bridge(kind)]);
        }
    }
}

impl Drop for LabNetwork {
    fn drop(&mut self) {
        self.tear_down();
    }
}
