"""Value pools of the synthetic benchmark: cities, jobs, genres, awards, title words, name syllables, world facts."""
from __future__ import annotations

CITIES = (
    ("Lisbon", "Portugal"), ("Paris", "France"), ("Berlin", "Germany"), ("Madrid", "Spain"), ("Rome", "Italy"),
    ("Vienna", "Austria"), ("Prague", "Czech Republic"), ("Warsaw", "Poland"), ("Stockholm", "Sweden"),
    ("Oslo", "Norway"), ("Copenhagen", "Denmark"), ("Helsinki", "Finland"), ("Dublin", "Ireland"),
    ("London", "United Kingdom"), ("Amsterdam", "Netherlands"), ("Brussels", "Belgium"), ("Athens", "Greece"),
    ("Istanbul", "Turkey"), ("Cairo", "Egypt"), ("Lagos", "Nigeria"), ("Nairobi", "Kenya"), ("Accra", "Ghana"),
    ("Cape Town", "South Africa"), ("Casablanca", "Morocco"), ("Mumbai", "India"), ("Karachi", "Pakistan"),
    ("Dhaka", "Bangladesh"), ("Bangkok", "Thailand"), ("Hanoi", "Vietnam"), ("Manila", "Philippines"),
    ("Jakarta", "Indonesia"), ("Seoul", "South Korea"), ("Tokyo", "Japan"), ("Sydney", "Australia"),
    ("Auckland", "New Zealand"), ("Toronto", "Canada"), ("Chicago", "United States"), ("Mexico City", "Mexico"),
    ("Lima", "Peru"), ("Buenos Aires", "Argentina"),
)
PLACES = tuple(f"{c}, {k}" for c, k in CITIES)
JOBS = (
    "baker", "nurse", "carpenter", "teacher", "engineer", "architect", "electrician", "pharmacist", "librarian",
    "tailor", "mechanic", "accountant", "photographer", "veterinarian", "journalist", "farmer", "lawyer", "chef",
    "plumber", "surgeon", "dentist", "musician", "painter", "police officer", "firefighter", "pilot",
    "astronomer", "bookbinder", "florist", "translator",
)
GENRES = (
    "mystery", "science fiction", "historical fiction", "fantasy", "romance", "horror", "literary fiction",
    "thriller", "crime", "magical realism", "adventure", "satire", "dystopian fiction", "gothic fiction",
    "coming-of-age fiction",
)
AWARDS = (
    "Silver Quill Award", "Harbour Light Prize", "Meridian Book Medal", "Golden Lantern Award",
    "Northwind Fiction Prize", "Amber Leaf Award", "Crescent Pen Prize", "Blue Heron Literary Award",
    "Ironwood Medal for Fiction", "Evening Star Prize", "Copper Compass Award", "Whitestone Prize for Literature",
    "Saffron Ink Award", "Open Gate Book Prize", "Tall Pines Award", "Starling Prize for Storytelling",
    "Glass Tower Medal", "Riverstone Award",
)
LANGUAGES = ("English", "Spanish", "French", "Portuguese", "German", "Italian", "Dutch", "Swedish", "Polish",
             "Turkish", "Japanese", "Korean")
THEMES = (
    "family loyalty", "the passage of time", "exile and belonging", "memory and loss", "the cost of ambition",
    "friendship across divides", "the power of storytelling", "justice and revenge", "life at sea",
    "childhood innocence", "identity and self-discovery", "forgiveness", "the natural world",
    "war and its aftermath", "love against the odds", "isolation", "faith and doubt", "power and corruption",
    "migration", "the secrets of small towns",
)
TITLE_ADJ = (
    "Silent", "Crimson", "Hidden", "Broken", "Golden", "Forgotten", "Distant", "Burning", "Quiet", "Hollow",
    "Secret", "Wandering", "Frozen", "Bitter", "Gentle", "Restless", "Shattered", "Endless", "Pale", "Wild",
    "Lonely", "Scarlet", "Velvet", "Iron", "Silver", "Midnight", "Fading", "Sleeping", "Painted", "Narrow",
    "Ancient", "Weeping", "Drowned", "Lost", "Last", "Tender", "Stolen", "Invisible", "Northern", "Southern",
)
TITLE_NOUN = (
    "Harbour", "Garden", "Mirror", "River", "Lantern", "Orchard", "Letter", "Bridge", "Tide", "Forest",
    "Window", "Compass", "Island", "Station", "Winter", "Voyage", "Archive", "Tower", "Meadow", "Shadow",
    "Promise", "Violin", "House", "Crown", "Season", "Map", "Road", "Key", "Storm", "Clockmaker",
    "Lighthouse", "Cathedral", "Feather", "Kingdom", "Ferry", "Ledger", "Mountain", "Festival", "Door", "Sparrow",
)
TITLE_CAPACITY = len(TITLE_ADJ) * len(TITLE_NOUN) * 3 // 4
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
ONSETS = ("b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "st",
          "th", "tr", "gr", "kl", "sh", "")
VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "ae", "ia", "ou", "ei")
CODAS = ("", "", "", "n", "r", "l", "s", "th", "nd", "m")
COUNTRY_SUFFIX = ("ia", "a", "land", "ora", "eth", "ovia")
CAPITAL_SUFFIX = ("th", "burg", "holm", "ven", "dor", "mere", "grad", "port")
ANIMALS = ("snow leopard", "red fox", "golden eagle", "river otter", "white stork", "brown bear", "grey wolf",
           "lynx", "bison", "peacock", "sea turtle", "ibex")
EXPORTS = ("copper", "tea", "wool", "timber", "salt", "olive oil", "silk", "coffee", "tin", "amber", "rice",
           "marble")
