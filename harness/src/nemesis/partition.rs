//! Partition shapes: which directed Raft links a network partition cuts.
//!
//! A [`Link`] `(from, to)` carries `from`'s Raft messages to `to` (one TCP
//! proxy per link, see `harness/src/proxy.rs`). Cutting it means `to` no longer
//! hears `from`. Every shape is a pure function of the node order it is
//! given (the caller shuffles it with the run's seeded RNG):
//!
//! ```text
//!   order [1,2,3,4,5]
//!
//!   isolate-one   1 | 2 3 4 5            node 1 hears nobody, nobody hears 1
//!   halves        1 2 | 3 4 5            minority (n/2 nodes) | majority
//!   bridge        1 2 - 3 - 4 5          3 hears everyone; 1,2 and 4,5 not each other
//!   ring          each node hears itself and its ring neighbours:
//!                 1:{5,1,2} 2:{1,2,3} 3:{2,3,4} 4:{3,4,5} 5:{4,5,1}
//!                 every node sees a majority, no two the same majority
//! ```
//!
//! The first three are symmetric. `ring` with 3 nodes is asymmetric: a
//! majority is 2, so node `i` hears itself and `i+1` only, and the links
//! `i-1 -> i` are cut (each node hears one other, none the same).
//!
//! Invariant (tested): every shape cuts at least one link and never a
//! link from a node to itself; healing restores every link.

use std::collections::BTreeSet;

use crate::proxy::Link;

/// How a partition divides the nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    IsolateOne,
    Halves,
    Bridge,
    Ring,
}

impl Shape {
    pub const ALL: [Shape; 4] = [Shape::IsolateOne, Shape::Halves, Shape::Bridge, Shape::Ring];

    pub fn as_str(self) -> &'static str {
        match self {
            Shape::IsolateOne => "isolate-one",
            Shape::Halves => "halves",
            Shape::Bridge => "bridge",
            Shape::Ring => "ring",
        }
    }
}

/// The links `shape` cuts, for nodes in `order` (at least 3 nodes).
pub fn cut_links(shape: Shape, order: &[u64]) -> BTreeSet<Link> {
    assert!(order.len() >= 3, "a partition needs at least 3 nodes, got {order:?}");
    let n = order.len();
    let mut cut = BTreeSet::new();
    let mut cut_between = |a: &[u64], b: &[u64]| {
        for &x in a {
            for &y in b {
                cut.insert((x, y));
                cut.insert((y, x));
            }
        }
    };
    match shape {
        Shape::IsolateOne => cut_between(&order[..1], &order[1..]),
        Shape::Halves => cut_between(&order[..n / 2], &order[n / 2..]),
        Shape::Bridge => {
            // [left..] bridge [right..]: the bridge is the middle node.
            let mid = n / 2;
            cut_between(&order[..mid], &order[mid + 1..]);
        }
        Shape::Ring => {
            let majority = n / 2 + 1;
            // Node i hears order[i - back ..= i + ahead] around the ring.
            let back = (majority - 1) / 2;
            let ahead = majority - 1 - back;
            for (i, &to) in order.iter().enumerate() {
                let hears: BTreeSet<u64> = (0..majority).map(|k| order[(i + n - back + k) % n]).collect();
                debug_assert_eq!(hears.len(), majority);
                debug_assert!(hears.contains(&order[(i + ahead) % n]));
                for &from in order.iter().filter(|f| !hears.contains(f)) {
                    cut.insert((from, to));
                }
            }
        }
    }
    cut
}

/// Whom `node` hears (itself included) when `cut` is in force.
pub fn hears(cut: &BTreeSet<Link>, nodes: &[u64], node: u64) -> BTreeSet<u64> {
    nodes.iter().copied().filter(|&from| from == node || !cut.contains(&(from, node))).collect()
}

/// Links as `"1->2"` strings, for history events.
pub fn describe(cut: &BTreeSet<Link>) -> Vec<String> {
    cut.iter().map(|(from, to)| format!("{from}->{to}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn views(cut: &BTreeSet<Link>, nodes: &[u64]) -> Vec<BTreeSet<u64>> {
        nodes.iter().map(|&n| hears(cut, nodes, n)).collect()
    }

    fn set(items: &[u64]) -> BTreeSet<u64> {
        items.iter().copied().collect()
    }

    /// Goal: each shape cuts what its name says, for 3 and 5 nodes.
    /// Method: compute who hears whom and compare with the drawing in the
    /// module docs.
    #[test]
    fn shapes_match_their_drawings() {
        let five = [1, 2, 3, 4, 5];
        let cut = cut_links(Shape::IsolateOne, &five);
        assert_eq!(
            views(&cut, &five),
            vec![set(&[1]), set(&[2, 3, 4, 5]), set(&[2, 3, 4, 5]), set(&[2, 3, 4, 5]), set(&[2, 3, 4, 5])]
        );

        let cut = cut_links(Shape::Halves, &five);
        assert_eq!(
            views(&cut, &five),
            vec![set(&[1, 2]), set(&[1, 2]), set(&[3, 4, 5]), set(&[3, 4, 5]), set(&[3, 4, 5])]
        );

        let cut = cut_links(Shape::Bridge, &five);
        assert_eq!(
            views(&cut, &five),
            vec![set(&[1, 2, 3]), set(&[1, 2, 3]), set(&[1, 2, 3, 4, 5]), set(&[3, 4, 5]), set(&[3, 4, 5])]
        );

        let cut = cut_links(Shape::Ring, &five);
        assert_eq!(
            views(&cut, &five),
            vec![set(&[5, 1, 2]), set(&[1, 2, 3]), set(&[2, 3, 4]), set(&[3, 4, 5]), set(&[4, 5, 1])]
        );

        let three = [7, 8, 9];
        let cut = cut_links(Shape::Halves, &three);
        assert_eq!(views(&cut, &three), vec![set(&[7]), set(&[8, 9]), set(&[8, 9])]);
        let cut = cut_links(Shape::Ring, &three);
        assert_eq!(views(&cut, &three), vec![set(&[7, 8]), set(&[8, 9]), set(&[9, 7])]);
        assert!(cut.contains(&(9, 7)) && !cut.contains(&(7, 9)), "ring of 3 is asymmetric: {cut:?}");
    }

    /// Goal: the properties every shape promises hold for any node order.
    /// Method: all shapes, sizes 3 and 5, every rotation of the order:
    /// something is cut, no self-links; symmetric shapes cut both ways;
    /// in a ring every node hears a majority and no two the same one; in
    /// the others some majority hears itself (a leader can be elected).
    #[test]
    fn shape_properties_hold_for_every_order() {
        for n in [3usize, 5] {
            let base: Vec<u64> = (1..=n as u64).collect();
            for r in 0..n {
                let mut order = base.clone();
                order.rotate_left(r);
                for shape in Shape::ALL {
                    let cut = cut_links(shape, &order);
                    assert!(!cut.is_empty(), "{shape:?} {order:?}");
                    assert!(cut.iter().all(|(a, b)| a != b), "{shape:?} cuts a self-link");
                    let views = views(&cut, &order);
                    let majority = n / 2 + 1;
                    if shape == Shape::Ring {
                        assert!(views.iter().all(|v| v.len() == majority), "{views:?}");
                        let distinct: BTreeSet<_> = views.iter().collect();
                        assert_eq!(distinct.len(), n, "ring views must differ: {views:?}");
                    } else {
                        assert!(cut.iter().all(|&(a, b)| cut.contains(&(b, a))), "{shape:?} is symmetric");
                        assert!(views.iter().any(|v| v.len() >= majority), "{shape:?}: no majority {views:?}");
                    }
                }
            }
        }
        assert_eq!(describe(&cut_links(Shape::IsolateOne, &[1, 2, 3])), vec!["1->2", "1->3", "2->1", "3->1"]);
    }
}
