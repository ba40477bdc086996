//! The neighbour rule: a face is named only if it resembles the customer more than the
//! customer's own portraits resemble any *other* customer (by `matching.neighbour_gap`).
//!
//! Why: how alike two different people can score depends on who they are. The dlib-style net
//! scores unrelated East Asian faces 0.92 on average (Western ones 0.83), so one threshold
//! either names East Asian strangers or no East Asian customer. The gallery itself shows,
//! for each customer, how high a different person can score against them: that bar adapts
//! to the customer's own neighbourhood, needs no cohort of outsiders, and grows stricter as
//! the gallery grows denser (more look-alikes enrolled). Measured in the README.

use std::collections::HashMap;

use parking_lot::Mutex;

use super::GalleryError;

/// Every indexed portrait's vector by customer (the faiss index cannot give vectors back),
/// and the bars computed since the vectors last changed.
#[derive(Default)]
pub(super) struct Neighbours {
    portraits: HashMap<i64, Vec<i64>>,
    vectors: HashMap<i64, (i64, Box<[f32]>)>,
    bars: Mutex<HashMap<i64, Option<f32>>>,
}

impl Neighbours {
    pub fn added(&mut self, customer: i64, ids: &[i64], vectors: &[Vec<f32>]) {
        for (&id, v) in ids.iter().zip(vectors) {
            self.portraits.entry(customer).or_default().push(id);
            self.vectors
                .insert(id, (customer, v.clone().into_boxed_slice()));
        }
        // Any bar may rise. Updating the known bars here would cost a scan of every cached
        // customer's vectors under the index's write lock, stalling searches (measured: p99
        // 13× idle at 100k portraits); one batched search when a bar is next needed is cheaper.
        self.changed();
    }

    pub fn removed(&mut self, ids: &[i64]) {
        for id in ids {
            if let Some((customer, _)) = self.vectors.remove(id)
                && let Some(own) = self.portraits.get_mut(&customer)
            {
                own.retain(|p| p != id);
                if own.is_empty() {
                    self.portraits.remove(&customer);
                }
            }
        }
        self.changed();
    }

    /// Any bar may have come from a vector that changed or was hidden.
    pub fn changed(&mut self) {
        self.bars.get_mut().clear();
    }

    /// The best score of `customer`'s portraits against another customer's: the score a face
    /// must beat. `search` is the index's (several queries at once); `owner_of` says whose a
    /// portrait is (`None`: being erased). `None` when no other customer is enrolled.
    pub fn bar(
        &self,
        customer: i64,
        search: impl Fn(&[f32], usize) -> Result<Vec<Vec<(i64, f32)>>, GalleryError>,
        owner_of: impl Fn(i64) -> Option<i64>,
    ) -> Result<Option<f32>, GalleryError> {
        if let Some(&bar) = self.bars.lock().get(&customer) {
            return Ok(bar);
        }
        let own = self.portraits.get(&customer).map_or(&[][..], Vec::as_slice);
        if own.is_empty() {
            return Ok(None);
        }
        let queries: Vec<f32> = own
            .iter()
            .flat_map(|id| self.vectors[id].1.iter().copied())
            .collect();
        // the customer's own portraits come first; a few more cover ones being erased
        let bar = search(&queries, own.len() + 8)?
            .iter()
            .filter_map(|hits| {
                hits.iter()
                    .find(|&&(p, _)| owner_of(p).is_some_and(|o| o != customer))
                    .map(|&(_, score)| score)
            })
            .reduce(f32::max);
        self.bars.lock().insert(customer, bar);
        Ok(bar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::embed::{l2_normalised, similarity};

    fn exhaustive(n: &Neighbours) -> Vec<(i64, Vec<f32>)> {
        n.vectors
            .iter()
            .map(|(&id, (_, v))| (id, v.to_vec()))
            .collect()
    }

    fn search(
        all: &[(i64, Vec<f32>)],
        queries: &[f32],
        k: usize,
    ) -> Result<Vec<Vec<(i64, f32)>>, GalleryError> {
        Ok(queries
            .chunks_exact(2)
            .map(|q| {
                let mut hits: Vec<(i64, f32)> =
                    all.iter().map(|(id, v)| (*id, similarity(q, v))).collect();
                hits.sort_by(|a, b| b.1.total_cmp(&a.1));
                hits.truncate(k);
                hits
            })
            .collect())
    }

    #[test]
    fn the_bar_is_the_closest_other_customer_and_follows_changes() {
        let mut n = Neighbours::default();
        let v = |x: f32, y: f32| l2_normalised(&[x, y]);
        n.added(1, &[10, 11], &[v(1.0, 0.0), v(1.0, 0.1)]);
        n.added(2, &[20], &[v(1.0, 0.3)]);
        n.added(3, &[30], &[v(0.0, 1.0)]);
        let owners: HashMap<i64, i64> = [(10, 1), (11, 1), (20, 2), (30, 3)].into();
        let owner = |p: i64| owners.get(&p).copied();
        let all = exhaustive(&n);
        let bar = n.bar(1, |q, k| search(&all, q, k), owner).unwrap().unwrap();
        assert!((bar - similarity(&v(1.0, 0.1), &v(1.0, 0.3))).abs() < 1e-6);
        // a closer look-alike enrolled later raises the bar
        n.added(5, &[50], &[v(1.0, 0.05)]);
        let owners: HashMap<i64, i64> = [(10, 1), (11, 1), (20, 2), (30, 3), (50, 5)].into();
        let owner = |p: i64| owners.get(&p).copied();
        let all = exhaustive(&n);
        let bar = n.bar(1, |q, k| search(&all, q, k), owner).unwrap().unwrap();
        let closest = similarity(&v(1.0, 0.1), &v(1.0, 0.05));
        assert!(closest > similarity(&v(1.0, 0.0), &v(1.0, 0.05)));
        assert!((bar - closest).abs() < 1e-6, "{bar} vs {closest}");
        // customers 2 and 5 taken away: customer 1's nearest other is now customer 3, far away
        n.removed(&[20, 50]);
        let all = exhaustive(&n);
        let bar = n.bar(1, |q, k| search(&all, q, k), owner).unwrap().unwrap();
        assert!(bar < 0.2, "{bar}");
        assert_eq!(n.bar(4, |q, k| search(&all, q, k), owner).unwrap(), None);
    }
}
