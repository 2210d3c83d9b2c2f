//! What the patients' templates show: providers with their open times grouped by local day, in
//! each location's time zone, and the frame every patient page shares.

use std::collections::BTreeMap;

use super::public::Found;
use super::zocdoc::Provider;

/// The frame of every patient page: the clinic's name, the login state, the nav's CSRF token.
pub struct Chrome {
    pub clinic_name: String,
    pub logged_in: bool,
    /// The token of the nav's logout form (empty when not logged in).
    pub csrf: String,
}

pub struct ReasonOption {
    pub id: String,
    pub name: String,
    pub selected: bool,
}

pub struct TimeButton {
    /// `location id|Zocdoc's start time`: what the Book button posts.
    pub value: String,
    pub label: String,
}

pub struct DayTimes {
    pub label: String,
    pub times: Vec<TimeButton>,
}

pub struct LocationTimes {
    pub id: String,
    pub address: String,
    pub zone_label: String,
    pub days: Vec<DayTimes>,
    /// More open times than shown here (on the provider's page).
    pub more: bool,
}

pub struct ProviderCard {
    pub id: String,
    pub name: String,
    pub specialty: String,
    pub reasons: Vec<ReasonOption>,
    pub locations: Vec<LocationTimes>,
    /// Whether any location has an open time to book.
    pub bookable: bool,
}

fn card(provider: &Provider, found: &Found, per_location: usize, reason: Option<&str>) -> ProviderCard {
    let locations: Vec<LocationTimes> = provider
        .locations
        .iter()
        .map(|l| {
            let slots: Vec<_> = found.slots.iter().filter(|s| s.location_id == l.id).collect();
            let mut days: BTreeMap<String, DayTimes> = BTreeMap::new();
            for s in slots.iter().take(per_location) {
                days.entry(l.zone.date_key(s.start))
                    .or_insert_with(|| DayTimes { label: l.zone.day(s.start), times: Vec::new() })
                    .times
                    .push(TimeButton { value: format!("{}|{}", l.id, s.raw), label: l.zone.time(s.start) });
            }
            LocationTimes {
                id: l.id.clone(),
                address: l.address.clone(),
                zone_label: l.zone.label(),
                days: days.into_values().collect(),
                more: slots.len() > per_location,
            }
        })
        .collect();
    let first_reason = provider.visit_reasons.first().map(|r| r.id.as_str());
    let wanted = reason.filter(|r| provider.visit_reasons.iter().any(|v| v.id == *r)).or(first_reason);
    ProviderCard {
        id: provider.id.clone(),
        name: provider.name.clone(),
        specialty: provider.specialty.clone(),
        reasons: provider
            .visit_reasons
            .iter()
            .map(|r| ReasonOption { id: r.id.clone(), name: r.name.clone(), selected: Some(r.id.as_str()) == wanted })
            .collect(),
        bookable: !provider.visit_reasons.is_empty() && locations.iter().any(|l| !l.days.is_empty()),
        locations,
    }
}

/// One card per provider found, with up to `per_location` open times per location.
pub fn cards(found: &Found, per_location: usize, reason: Option<&str>) -> Vec<ProviderCard> {
    found.providers.iter().map(|p| card(p, found, per_location, reason)).collect()
}
