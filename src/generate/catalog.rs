//! Fixed catalogues of the simulated world: lines of business with their
//! parameters (see docs/demo-data.md for the public source of each figure),
//! tenants, carriers and their policy-number formats, and name lists.

/// A line of business, written with the contract's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Line {
    Auto,
    Home,
    Renters,
    Umbrella,
    CommercialPackage,
    GeneralLiability,
    WorkersComp,
    CommercialAuto,
    Life,
    Health,
}

pub const ALL_LINES: [Line; 10] = [
    Line::Auto,
    Line::Home,
    Line::Renters,
    Line::Umbrella,
    Line::CommercialPackage,
    Line::GeneralLiability,
    Line::WorkersComp,
    Line::CommercialAuto,
    Line::Life,
    Line::Health,
];

/// Per-line parameters of the simulation.
pub struct LineParams {
    /// Mean *annual* premium in dollars and log-normal sigma.
    pub annual_mean: f64,
    pub sigma: f64,
    /// Clamp of the annual premium in dollars.
    pub min: f64,
    pub max: f64,
    /// New-business and renewal commission rate ranges, in units of 0.0001
    /// (so 1000 = 10 %), drawn in steps of 25 (0.25 percentage points).
    pub new_rate: (i64, i64),
    pub renewal_rate: (i64, i64),
    /// Base logit of renewing (first renewal, mono-line, no price shock,
    /// average producer).
    pub renew_logit: f64,
    /// Probability that a term is cancelled mid-term (before price effects).
    pub cancel_per_term: f64,
    /// Mean renewal price change by calendar year of the renewal
    /// (2021, 2022, 2023, 2024, 2025+), as fractions.
    pub trend: [f64; 5],
    /// Share of new business effective on 1 January.
    pub jan1_share: f64,
    /// Share of new business effective on the 1st of a month.
    pub first_of_month_share: f64,
}

impl Line {
    pub fn as_str(self) -> &'static str {
        match self {
            Line::Auto => "auto",
            Line::Home => "home",
            Line::Renters => "renters",
            Line::Umbrella => "umbrella",
            Line::CommercialPackage => "commercial_package",
            Line::GeneralLiability => "general_liability",
            Line::WorkersComp => "workers_comp",
            Line::CommercialAuto => "commercial_auto",
            Line::Life => "life",
            Line::Health => "health",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn is_commercial(self) -> bool {
        matches!(self, Line::CommercialPackage | Line::GeneralLiability | Line::WorkersComp | Line::CommercialAuto)
    }

    /// Lines whose premium is audited after the term (adjustment rows).
    pub fn is_auditable(self) -> bool {
        matches!(self, Line::GeneralLiability | Line::WorkersComp | Line::CommercialPackage)
    }

    pub fn params(self) -> &'static LineParams {
        &LINE_PARAMS[self.index()]
    }
}

static LINE_PARAMS: [LineParams; 10] = [
    // auto: iii.org / NAIC average ≈ $1,060 a year; 10–15 % new, 10–12 % renewal.
    LineParams {
        annual_mean: 1060.0,
        sigma: 0.38,
        min: 300.0,
        max: 6000.0,
        new_rate: (1000, 1500),
        renewal_rate: (1000, 1200),
        renew_logit: 1.55,
        cancel_per_term: 0.045,
        trend: [0.02, 0.07, 0.14, 0.10, 0.04],
        jan1_share: 0.0,
        first_of_month_share: 0.05,
    },
    // home (HO-3): ≈ $1,410; 12–18 % / 10–15 %.
    LineParams {
        annual_mean: 1410.0,
        sigma: 0.40,
        min: 400.0,
        max: 12000.0,
        new_rate: (1200, 1800),
        renewal_rate: (1000, 1500),
        renew_logit: 1.75,
        cancel_per_term: 0.035,
        trend: [0.04, 0.07, 0.10, 0.09, 0.06],
        jan1_share: 0.0,
        first_of_month_share: 0.10,
    },
    // renters: ≈ $170; rates as home.
    LineParams {
        annual_mean: 170.0,
        sigma: 0.30,
        min: 80.0,
        max: 600.0,
        new_rate: (1200, 1800),
        renewal_rate: (1000, 1500),
        renew_logit: 1.30,
        cancel_per_term: 0.06,
        trend: [0.01, 0.02, 0.04, 0.04, 0.03],
        jan1_share: 0.0,
        first_of_month_share: 0.30,
    },
    // umbrella: no figure in domain-facts; modest premium, home rates.
    LineParams {
        annual_mean: 380.0,
        sigma: 0.30,
        min: 150.0,
        max: 2500.0,
        new_rate: (1200, 1500),
        renewal_rate: (1000, 1200),
        renew_logit: 1.60,
        cancel_per_term: 0.02,
        trend: [0.02, 0.03, 0.06, 0.06, 0.04],
        jan1_share: 0.0,
        first_of_month_share: 0.10,
    },
    // commercial package / BOP: right-skewed; 10–20 % / 10–15 %.
    LineParams {
        annual_mean: 3200.0,
        sigma: 0.95,
        min: 500.0,
        max: 250000.0,
        new_rate: (1000, 2000),
        renewal_rate: (1000, 1500),
        renew_logit: 1.70,
        cancel_per_term: 0.035,
        trend: [0.03, 0.05, 0.08, 0.07, 0.05],
        jan1_share: 0.35,
        first_of_month_share: 0.45,
    },
    // general liability: right-skewed; 10–20 % / 10–15 %.
    LineParams {
        annual_mean: 1800.0,
        sigma: 1.00,
        min: 400.0,
        max: 150000.0,
        new_rate: (1000, 2000),
        renewal_rate: (1000, 1500),
        renew_logit: 1.45,
        cancel_per_term: 0.04,
        trend: [0.02, 0.04, 0.06, 0.06, 0.04],
        jan1_share: 0.35,
        first_of_month_share: 0.45,
    },
    // workers' comp: 8–12 % / 7–10 %.
    LineParams {
        annual_mean: 4200.0,
        sigma: 1.05,
        min: 600.0,
        max: 300000.0,
        new_rate: (800, 1200),
        renewal_rate: (700, 1000),
        renew_logit: 1.50,
        cancel_per_term: 0.04,
        trend: [-0.02, -0.01, 0.00, 0.01, 0.01],
        jan1_share: 0.40,
        first_of_month_share: 0.45,
    },
    // commercial auto: right-skewed; commercial ranges.
    LineParams {
        annual_mean: 5200.0,
        sigma: 0.90,
        min: 900.0,
        max: 200000.0,
        new_rate: (1000, 1500),
        renewal_rate: (1000, 1250),
        renew_logit: 1.50,
        cancel_per_term: 0.045,
        trend: [0.04, 0.08, 0.11, 0.10, 0.06],
        jan1_share: 0.35,
        first_of_month_share: 0.45,
    },
    // life: first-year commission 40–115 % of target premium (we use 50–100 %),
    // renewals 2–10 % (we use 2–6 %).
    LineParams {
        annual_mean: 1300.0,
        sigma: 0.55,
        min: 200.0,
        max: 25000.0,
        new_rate: (5000, 10000),
        renewal_rate: (200, 600),
        renew_logit: 2.45,
        cancel_per_term: 0.03,
        trend: [0.0, 0.0, 0.0, 0.0, 0.0],
        jan1_share: 0.05,
        first_of_month_share: 0.60,
    },
    // health (individual / small group): 4–7 % / 3–5 %.
    LineParams {
        annual_mean: 6200.0,
        sigma: 0.45,
        min: 1500.0,
        max: 60000.0,
        new_rate: (400, 700),
        renewal_rate: (300, 500),
        renew_logit: 1.30,
        cancel_per_term: 0.045,
        trend: [0.05, 0.06, 0.07, 0.07, 0.07],
        jan1_share: 0.50,
        first_of_month_share: 1.0,
    },
];

/// Customer segment: which bundles a customer can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment {
    Personal,
    Commercial,
    Life,
    Health,
}

/// (weight, lines) bundles a customer of a segment buys (1–3 policies).
pub fn bundles(segment: Segment) -> &'static [(f64, &'static [Line])] {
    use Line::*;
    match segment {
        Segment::Personal => &[
            (0.42, &[Auto]),
            (0.12, &[Home]),
            (0.09, &[Renters]),
            (0.20, &[Auto, Home]),
            (0.08, &[Auto, Renters]),
            (0.06, &[Auto, Home, Umbrella]),
            (0.03, &[Home, Umbrella]),
        ],
        Segment::Commercial => &[
            (0.30, &[CommercialPackage]),
            (0.20, &[GeneralLiability]),
            (0.15, &[WorkersComp]),
            (0.10, &[CommercialAuto]),
            (0.10, &[CommercialPackage, WorkersComp]),
            (0.07, &[GeneralLiability, WorkersComp]),
            (0.08, &[CommercialPackage, CommercialAuto, WorkersComp]),
        ],
        Segment::Life => &[(1.0, &[Life])],
        Segment::Health => &[(0.88, &[Health]), (0.12, &[Health, Life])],
    }
}

/// Kinds of tenant and their segment mix (personal, commercial, life, health).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TenantKind {
    AgencyGroup,
    Mga,
    Wholesaler,
    PersonalLines,
    Benefits,
    Mixed,
}

impl TenantKind {
    pub fn segment_mix(self) -> [f64; 4] {
        match self {
            TenantKind::AgencyGroup => [0.70, 0.22, 0.05, 0.03],
            TenantKind::Mga => [0.15, 0.85, 0.0, 0.0],
            TenantKind::Wholesaler => [0.0, 1.0, 0.0, 0.0],
            TenantKind::PersonalLines => [0.95, 0.0, 0.05, 0.0],
            TenantKind::Benefits => [0.15, 0.0, 0.40, 0.45],
            TenantKind::Mixed => [0.55, 0.35, 0.05, 0.05],
        }
    }
}

/// (tenant id, display name, kind). Tenants beyond this list are numbered.
pub const TENANTS: &[(&str, &str, TenantKind)] = &[
    ("t-acme", "Acme Insurance Group", TenantKind::AgencyGroup),
    ("t-bluestone", "Bluestone Underwriters MGA", TenantKind::Mga),
    ("t-prairie", "Prairie Family Insurance", TenantKind::PersonalLines),
    ("t-harbor", "Harbor Risk Wholesale", TenantKind::Wholesaler),
    ("t-summit", "Summit Benefits Partners", TenantKind::Benefits),
    ("t-cedar", "Cedar & Pine Agency", TenantKind::Mixed),
    ("t-lakeshore", "Lakeshore Insurance Services", TenantKind::AgencyGroup),
    ("t-redrock", "Red Rock Specialty MGA", TenantKind::Mga),
    ("t-meridian", "Meridian Brokerage", TenantKind::Mixed),
    ("t-oakview", "Oakview Insurance Agency", TenantKind::PersonalLines),
    ("t-keystone", "Keystone Benefits Group", TenantKind::Benefits),
    ("t-northgate", "Northgate Wholesale Brokers", TenantKind::Wholesaler),
];

/// How a carrier writes its own policy numbers: prefix, separator, zero
/// padded number of `digits`, and (optionally) a two-digit term suffix.
pub struct NumberFormat {
    pub prefix: &'static str,
    pub sep: &'static str,
    pub digits: u32,
    pub term_suffix: bool,
}

/// How the same carrier prints the number on its commission statement.
pub struct StatementStyle {
    pub lower: bool,
    pub sep: &'static str,
    pub strip_zeros: bool,
    /// Insured name written "LAST, FIRST" in capitals instead of "First Last".
    pub name_last_first: bool,
}

pub struct CarrierSpec {
    pub name: &'static str,
    pub lines: &'static [Line],
    pub weight: f64,
    pub format: NumberFormat,
    pub statement: StatementStyle,
    /// Auto term length in months (6 or 12).
    pub auto_term: u32,
    /// Day of the month following the period on which the statement is issued.
    pub statement_day: u32,
}

const PERSONAL: &[Line] = &[Line::Auto, Line::Home, Line::Renters, Line::Umbrella];
const PERSONAL_COMMERCIAL: &[Line] = &[
    Line::Auto,
    Line::Home,
    Line::Renters,
    Line::Umbrella,
    Line::CommercialPackage,
    Line::GeneralLiability,
    Line::WorkersComp,
    Line::CommercialAuto,
];
const COMMERCIAL: &[Line] = &[Line::CommercialPackage, Line::GeneralLiability, Line::WorkersComp, Line::CommercialAuto];

/// Fictional carriers (names styled like real ones, none is a real company).
pub const CARRIERS: &[CarrierSpec] = &[
    CarrierSpec {
        name: "Northbridge Mutual",
        lines: PERSONAL,
        weight: 3.0,
        format: NumberFormat { prefix: "NBM", sep: "-", digits: 7, term_suffix: true },
        statement: StatementStyle { lower: true, sep: " ", strip_zeros: true, name_last_first: true },
        auto_term: 6,
        statement_day: 12,
    },
    CarrierSpec {
        name: "Granite Shield Insurance",
        lines: PERSONAL_COMMERCIAL,
        weight: 2.5,
        format: NumberFormat { prefix: "GSI", sep: "", digits: 9, term_suffix: false },
        statement: StatementStyle { lower: false, sep: "-", strip_zeros: true, name_last_first: false },
        auto_term: 12,
        statement_day: 8,
    },
    CarrierSpec {
        name: "Pioneer Auto & Home",
        lines: &[Line::Auto, Line::Home, Line::Renters],
        weight: 2.5,
        format: NumberFormat { prefix: "PAH", sep: "-", digits: 8, term_suffix: true },
        statement: StatementStyle { lower: false, sep: "", strip_zeros: false, name_last_first: true },
        auto_term: 6,
        statement_day: 18,
    },
    CarrierSpec {
        name: "Copperline Insurance",
        lines: &[Line::Auto, Line::Renters],
        weight: 1.5,
        format: NumberFormat { prefix: "", sep: "", digits: 10, term_suffix: false },
        statement: StatementStyle { lower: false, sep: "", strip_zeros: true, name_last_first: false },
        auto_term: 6,
        statement_day: 5,
    },
    CarrierSpec {
        name: "Redwood Fire & Casualty",
        lines: PERSONAL_COMMERCIAL,
        weight: 2.0,
        format: NumberFormat { prefix: "RFC", sep: " ", digits: 7, term_suffix: true },
        statement: StatementStyle { lower: false, sep: "-", strip_zeros: false, name_last_first: true },
        auto_term: 12,
        statement_day: 15,
    },
    CarrierSpec {
        name: "Meridian General",
        lines: PERSONAL_COMMERCIAL,
        weight: 2.0,
        format: NumberFormat { prefix: "MG", sep: "-", digits: 8, term_suffix: false },
        statement: StatementStyle { lower: true, sep: "", strip_zeros: true, name_last_first: false },
        auto_term: 6,
        statement_day: 20,
    },
    CarrierSpec {
        name: "Keystone Casualty",
        lines: COMMERCIAL,
        weight: 2.5,
        format: NumberFormat { prefix: "KCC", sep: "-", digits: 6, term_suffix: true },
        statement: StatementStyle { lower: false, sep: " ", strip_zeros: true, name_last_first: false },
        auto_term: 12,
        statement_day: 10,
    },
    CarrierSpec {
        name: "Lakeshore Indemnity",
        lines: COMMERCIAL,
        weight: 2.0,
        format: NumberFormat { prefix: "LSI", sep: "", digits: 8, term_suffix: true },
        statement: StatementStyle { lower: true, sep: "-", strip_zeros: false, name_last_first: false },
        auto_term: 12,
        statement_day: 14,
    },
    CarrierSpec {
        name: "Bluewater Specialty",
        lines: &[Line::CommercialPackage, Line::GeneralLiability],
        weight: 1.5,
        format: NumberFormat { prefix: "BWS", sep: "-", digits: 7, term_suffix: false },
        statement: StatementStyle { lower: false, sep: "", strip_zeros: true, name_last_first: false },
        auto_term: 12,
        statement_day: 22,
    },
    CarrierSpec {
        name: "Atlas Commercial Underwriters",
        lines: &[Line::CommercialAuto, Line::GeneralLiability, Line::WorkersComp],
        weight: 1.5,
        format: NumberFormat { prefix: "ACU", sep: "-", digits: 9, term_suffix: true },
        statement: StatementStyle { lower: false, sep: " ", strip_zeros: false, name_last_first: false },
        auto_term: 12,
        statement_day: 9,
    },
    CarrierSpec {
        name: "Summit Workers Comp Fund",
        lines: &[Line::WorkersComp],
        weight: 1.5,
        format: NumberFormat { prefix: "WC", sep: "", digits: 8, term_suffix: false },
        statement: StatementStyle { lower: true, sep: "-", strip_zeros: true, name_last_first: false },
        auto_term: 12,
        statement_day: 25,
    },
    CarrierSpec {
        name: "Harborline Life",
        lines: &[Line::Life],
        weight: 2.0,
        format: NumberFormat { prefix: "HL", sep: "", digits: 9, term_suffix: false },
        statement: StatementStyle { lower: false, sep: "-", strip_zeros: true, name_last_first: true },
        auto_term: 12,
        statement_day: 6,
    },
    CarrierSpec {
        name: "Beacon Life & Annuity",
        lines: &[Line::Life],
        weight: 1.5,
        format: NumberFormat { prefix: "BLA", sep: "-", digits: 8, term_suffix: false },
        statement: StatementStyle { lower: true, sep: "", strip_zeros: false, name_last_first: false },
        auto_term: 12,
        statement_day: 16,
    },
    CarrierSpec {
        name: "Evergreen Health Plans",
        lines: &[Line::Health],
        weight: 2.0,
        format: NumberFormat { prefix: "EHP", sep: "-", digits: 8, term_suffix: true },
        statement: StatementStyle { lower: false, sep: "", strip_zeros: true, name_last_first: true },
        auto_term: 12,
        statement_day: 11,
    },
    CarrierSpec {
        name: "Cascade Health Alliance",
        lines: &[Line::Health],
        weight: 1.5,
        format: NumberFormat { prefix: "CHA", sep: "", digits: 7, term_suffix: true },
        statement: StatementStyle { lower: true, sep: " ", strip_zeros: false, name_last_first: false },
        auto_term: 12,
        statement_day: 19,
    },
];

/// Agency-management systems a policy row may come from.
pub const SOURCE_SYSTEMS: &[&str] = &["applied_epic", "ezlynx", "hawksoft", "ams360", "nowcerts"];

/// (city, state) pairs for agencies.
pub const CITIES: &[(&str, &str)] = &[
    ("Denver", "CO"),
    ("Austin", "TX"),
    ("Columbus", "OH"),
    ("Raleigh", "NC"),
    ("Omaha", "NE"),
    ("Tampa", "FL"),
    ("Boise", "ID"),
    ("Madison", "WI"),
    ("Richmond", "VA"),
    ("Spokane", "WA"),
    ("Tucson", "AZ"),
    ("Knoxville", "TN"),
    ("Des Moines", "IA"),
    ("Albany", "NY"),
    ("Sacramento", "CA"),
    ("Lansing", "MI"),
    ("Harrisburg", "PA"),
    ("Savannah", "GA"),
    ("Portland", "ME"),
    ("Wichita", "KS"),
];

pub const FIRST_NAMES: &[&str] = &[
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Carlos",
    "Karen",
    "Daniel",
    "Lisa",
    "Matthew",
    "Nancy",
    "Anthony",
    "Betty",
    "Mark",
    "Sandra",
    "Steven",
    "Ashley",
    "Andrew",
    "Emily",
    "Kevin",
    "Donna",
    "Brian",
    "Michelle",
    "Luis",
    "Carol",
    "Jason",
    "Amanda",
    "Ryan",
    "Melissa",
    "Jacob",
    "Deborah",
    "Nicole",
    "Gary",
    "Maria",
    "Eric",
    "Angela",
    "Jonathan",
    "Rosa",
    "Wei",
    "Priya",
    "Omar",
    "Grace",
    "Tyrone",
    "Hannah",
    "Diego",
    "Aisha",
    "Ethan",
    "Olivia",
    "Noah",
    "Sofia",
    "Liam",
];

pub const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Chen",
    "Patel",
    "Okafor",
    "Kowalski",
    "Larsen",
    "Haddad",
    "Novak",
    "Schmidt",
    "Murphy",
    "Brooks",
    "Reyes",
    "Price",
    "Hughes",
    "Foster",
];

pub const BUSINESS_TRADES: &[&str] = &[
    "Roofing",
    "Plumbing",
    "Landscaping",
    "Bakery",
    "Dental",
    "Auto Repair",
    "Electric",
    "Construction",
    "Trucking",
    "Cafe",
    "Printing",
    "Hardware",
    "Cleaning",
    "Fitness",
    "Veterinary",
    "Logistics",
    "Machine Shop",
    "Florist",
    "Consulting",
    "Brewing",
];

pub const BUSINESS_SUFFIXES: &[&str] = &["LLC", "Inc", "Co", "Group", "& Sons", "Partners"];
