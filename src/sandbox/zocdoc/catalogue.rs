//! The simulated Zocdoc's providers: where they practise (each location in its own IANA time
//! zone, with and without daylight saving time) and the visit reasons they take.

use serde_json::{json, Value};

pub(crate) struct Location {
    pub(crate) id: &'static str,
    pub(crate) address1: &'static str,
    pub(crate) city: &'static str,
    pub(crate) state: &'static str,
    pub(crate) zip: &'static str,
    pub(crate) time_zone: &'static str,
}

pub(crate) struct VisitReason {
    pub(crate) id: &'static str,
    pub(crate) name: &'static str,
}

pub(crate) struct Provider {
    pub(crate) id: &'static str,
    pub(crate) full_name: &'static str,
    pub(crate) specialty: &'static str,
    pub(crate) locations: &'static [Location],
    pub(crate) visit_reasons: &'static [VisitReason],
}

const DENTISTRY: &[VisitReason] =
    &[VisitReason { id: "vr_cleaning", name: "Cleaning" }, VisitReason { id: "vr_tooth_pain", name: "Tooth pain" }];
const DERMATOLOGY: &[VisitReason] =
    &[VisitReason { id: "vr_skin_check", name: "Skin check" }, VisitReason { id: "vr_acne", name: "Acne" }];
const FAMILY: &[VisitReason] =
    &[VisitReason { id: "vr_illness", name: "Illness" }, VisitReason { id: "vr_physical", name: "Annual physical" }];
const PEDIATRICS: &[VisitReason] = &[
    VisitReason { id: "vr_sick_child", name: "Sick visit" },
    VisitReason { id: "vr_well_child", name: "Well-child visit" },
];

const fn at(
    id: &'static str,
    address1: &'static str,
    city: &'static str,
    state: &'static str,
    zip: &'static str,
    time_zone: &'static str,
) -> Location {
    Location { id, address1, city, state, zip, time_zone }
}

pub(crate) const PROVIDERS: &[Provider] = &[
    Provider {
        id: "pr_10231",
        full_name: "Dr. Sarah Chen, DDS",
        specialty: "Dentistry",
        locations: &[at("pl_20231", "210 Court St", "Brooklyn", "NY", "11201", "America/New_York")],
        visit_reasons: DENTISTRY,
    },
    Provider {
        id: "pr_10232",
        full_name: "Dr. Emily Novak, DMD",
        specialty: "Dentistry",
        locations: &[at("pl_20232", "90 Washington St", "Hoboken", "NJ", "07030", "America/New_York")],
        visit_reasons: DENTISTRY,
    },
    Provider {
        id: "pr_10233",
        full_name: "Dr. Marcus Webb, MD",
        specialty: "Dermatology",
        locations: &[at("pl_20233", "450 Lexington Ave", "New York", "NY", "10017", "America/New_York")],
        visit_reasons: DERMATOLOGY,
    },
    Provider {
        id: "pr_10234",
        full_name: "Dr. Aisha Bello, MD",
        specialty: "Dermatology",
        locations: &[
            at("pl_20234", "30 N Michigan Ave", "Chicago", "IL", "60602", "America/Chicago"),
            // Arizona keeps standard time all year.
            at("pl_20239", "1 E Washington St", "Phoenix", "AZ", "85004", "America/Phoenix"),
        ],
        visit_reasons: DERMATOLOGY,
    },
    Provider {
        id: "pr_10235",
        full_name: "Dr. Priya Raman, MD",
        specialty: "Family Medicine",
        locations: &[at("pl_20235", "30 Montgomery St", "Jersey City", "NJ", "07302", "America/New_York")],
        visit_reasons: FAMILY,
    },
    Provider {
        id: "pr_10236",
        full_name: "Dr. James O'Connor, MD",
        specialty: "Family Medicine",
        locations: &[at("pl_20236", "75 Francis St", "Boston", "MA", "02115", "America/New_York")],
        visit_reasons: FAMILY,
    },
    Provider {
        id: "pr_10237",
        full_name: "Dr. Daniel Ortiz, MD",
        specialty: "Pediatrics",
        locations: &[at("pl_20237", "82-68 164th St", "Queens", "NY", "11432", "America/New_York")],
        visit_reasons: PEDIATRICS,
    },
    Provider {
        id: "pr_10238",
        full_name: "Dr. Kenji Tanaka, MD",
        specialty: "Pediatrics",
        locations: &[
            at("pl_20238", "1825 4th St", "San Francisco", "CA", "94158", "America/Los_Angeles"),
            at("pl_20240", "1319 Punahou St", "Honolulu", "HI", "96826", "Pacific/Honolulu"),
        ],
        visit_reasons: PEDIATRICS,
    },
];

pub(crate) fn provider(id: &str) -> Option<&'static Provider> {
    PROVIDERS.iter().find(|p| p.id == id)
}

/// The location and its provider.
pub(crate) fn location(id: &str) -> Option<(&'static Provider, &'static Location)> {
    PROVIDERS.iter().find_map(|p| p.locations.iter().find(|l| l.id == id).map(|l| (p, l)))
}

pub(crate) fn location_json(l: &Location) -> Value {
    json!({
        "provider_location_id": l.id,
        "address1": l.address1,
        "city": l.city,
        "state": l.state,
        "zip": l.zip,
        "time_zone": l.time_zone,
    })
}

pub(crate) fn visit_reason_json(v: &VisitReason) -> Value {
    json!({"visit_reason_id": v.id, "name": v.name})
}

/// A provider as search and lookup answer it; `next_availability` is the first open time.
pub(crate) fn provider_json(p: &Provider, next_availability: Option<String>) -> Value {
    let first = p.locations.first();
    json!({
        "provider_id": p.id,
        "full_name": p.full_name,
        "specialty": p.specialty,
        "location": first.map(|l| json!({"city": l.city, "state": l.state})),
        "locations": p.locations.iter().map(location_json).collect::<Vec<_>>(),
        "visit_reasons": p.visit_reasons.iter().map(visit_reason_json).collect::<Vec<_>>(),
        "next_availability": next_availability,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_location_has_a_known_time_zone_and_unique_id() {
        let mut ids = std::collections::HashSet::new();
        for p in PROVIDERS {
            assert!(!p.locations.is_empty() && !p.visit_reasons.is_empty());
            for l in p.locations {
                assert!(ids.insert(l.id), "{}", l.id);
                assert!(jiff::tz::TimeZone::get(l.time_zone).is_ok(), "{}", l.time_zone);
                assert_eq!(location(l.id).unwrap().0.id, p.id);
            }
        }
        assert!(PROVIDERS.iter().flat_map(|p| p.locations).any(|l| l.time_zone == "America/Phoenix"));
    }
}
