"""Names and places per market, in the order of ``MARKETS``.

Small pools are enough: identity resolution must not rely on names (many real people share
them), so repeated names across the demo are a feature, not a flaw. Postal code patterns use
'#' for a digit and '@' for a letter.
"""

from __future__ import annotations

FIRST_NAMES: tuple[tuple[str, ...], ...] = (
    ("James", "Mary", "Michael", "Jennifer", "David", "Jessica", "Chris", "Ashley", "Daniel",
     "Emily", "Tyler", "Sarah", "Jordan", "Olivia"),
    ("Oliver", "Amelia", "Harry", "Isla", "George", "Ava", "Jack", "Emily", "Charlie", "Sophie",
     "Thomas", "Grace", "Alfie", "Poppy"),
    ("Lukas", "Anna", "Leon", "Lena", "Felix", "Marie", "Jonas", "Sophie", "Paul", "Laura",
     "Jürgen", "Sabine", "Maximilian", "Katrin"),
    ("Lucas", "Emma", "Hugo", "Chloé", "Louis", "Léa", "Gabriel", "Manon", "Arthur", "Camille",
     "Jules", "Inès", "Théo", "Zoé"),
    ("Hugo", "Lucía", "Martín", "María", "Pablo", "Paula", "Javier", "Carmen", "Álvaro", "Sofía",
     "Diego", "Laura", "Sergio", "Marta"),
    ("Budi", "Siti", "Agus", "Dewi", "Rizky", "Putri", "Andi", "Ayu", "Dimas", "Intan", "Fajar",
     "Nur", "Eko", "Rina"),
    ("Somchai", "Suda", "Anan", "Pim", "Niran", "Ploy", "Kittisak", "Nok", "Thanakorn", "Mali",
     "Chaiwat", "Kanya", "Prasert", "Siriporn"),
    ("Juan", "Maria", "Jose", "Angel", "Mark", "Kristine", "John Paul", "Jasmine", "Carlo",
     "Nicole", "Paolo", "Joy", "Miguel", "Princess"),
    ("Ahmad", "Nurul", "Muhammad", "Siti", "Wei Jie", "Mei Ling", "Arjun", "Priya", "Hafiz",
     "Aisyah", "Jun Hao", "Hui Min", "Faiz", "Farah"),
    ("João", "Maria", "Pedro", "Ana", "Lucas", "Juliana", "Gabriel", "Fernanda", "Rafael",
     "Camila", "Mateus", "Larissa", "Thiago", "Beatriz"),
    ("José", "Guadalupe", "Juan", "María", "Luis", "Fernanda", "Carlos", "Daniela", "Jorge",
     "Valeria", "Miguel", "Ximena", "Alejandro", "Andrea"),
    ("Mohammed", "Fatimah", "Abdullah", "Nora", "Faisal", "Sara", "Khalid", "Reem", "Omar",
     "Lama", "Saud", "Hessa", "Turki", "Joud"),
)  # fmt: skip

LAST_NAMES: tuple[tuple[str, ...], ...] = (
    ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Wilson",
     "Anderson", "Taylor", "Moore"),
    ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Evans", "Thomas", "Roberts",
     "Walker", "Wright", "Hughes"),
    ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz",
     "Hoffmann", "Koch", "Richter"),
    ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
     "Moreau", "Simon", "Laurent"),
    ("García", "Rodríguez", "González", "Fernández", "López", "Martínez", "Sánchez", "Pérez",
     "Gómez", "Martín", "Jiménez", "Ruiz"),
    ("Santoso", "Wijaya", "Saputra", "Hidayat", "Kusuma", "Pratama", "Nugroho", "Lestari",
     "Setiawan", "Halim", "Susanto", "Rahayu"),
    ("Srisuk", "Wongsawat", "Chaiyaporn", "Saetang", "Rattanakorn", "Boonmee", "Sukjai",
     "Thongdee", "Kaewkla", "Phromma", "Inthasorn", "Jaidee"),
    ("Santos", "Reyes", "Cruz", "Bautista", "Ocampo", "Garcia", "Mendoza", "Torres", "Flores",
     "Villanueva", "Ramos", "Aquino"),
    ("Abdullah", "Ibrahim", "Tan", "Lim", "Lee", "Wong", "Ismail", "Rahman", "Kumar", "Ng",
     "Hassan", "Chong"),
    ("Silva", "Santos", "Oliveira", "Souza", "Rodrigues", "Ferreira", "Alves", "Pereira", "Lima",
     "Gomes", "Costa", "Ribeiro"),
    ("Hernández", "García", "Martínez", "López", "González", "Pérez", "Rodríguez", "Sánchez",
     "Ramírez", "Cruz", "Flores", "Gómez"),
    ("Al-Harbi", "Al-Qahtani", "Al-Ghamdi", "Al-Zahrani", "Al-Otaibi", "Al-Dosari", "Al-Shehri",
     "Al-Mutairi", "Al-Anazi", "Al-Subaie", "Al-Shammari", "Al-Juhani"),
)  # fmt: skip

CITIES: tuple[tuple[tuple[str, str], ...], ...] = (
    (("New York", "100##"), ("Los Angeles", "900##"), ("San Francisco", "941##"),
     ("Austin", "787##"), ("Chicago", "606##"), ("Seattle", "981##"), ("Miami", "331##"),
     ("Boston", "021##")),
    (("London", "E# #@@"), ("London", "SW# #@@"), ("Manchester", "M# #@@"),
     ("Birmingham", "B# #@@"), ("Leeds", "LS# #@@"), ("Bristol", "BS# #@@")),
    (("Berlin", "10###"), ("München", "80###"), ("Hamburg", "20###"), ("Köln", "50###"),
     ("Frankfurt am Main", "60###")),
    (("Paris", "750##"), ("Lyon", "6900#"), ("Marseille", "1300#"), ("Toulouse", "3100#"),
     ("Lille", "5900#")),
    (("Madrid", "280##"), ("Barcelona", "080##"), ("Valencia", "460##"), ("Sevilla", "410##")),
    (("Jakarta", "1##10"), ("Surabaya", "60##1"), ("Bandung", "40##1"), ("Medan", "20##1")),
    (("Bangkok", "10###"), ("Chiang Mai", "50###"), ("Phuket", "83###"),
     ("Khon Kaen", "40###")),
    (("Manila", "10##"), ("Quezon City", "11##"), ("Cebu City", "60##"), ("Davao City", "80##")),
    (("Kuala Lumpur", "5####"), ("Petaling Jaya", "46###"), ("George Town", "10###"),
     ("Johor Bahru", "80###")),
    (("São Paulo", "0####-###"), ("Rio de Janeiro", "2####-###"),
     ("Belo Horizonte", "3####-###"), ("Curitiba", "8####-###"), ("Porto Alegre", "9####-###")),
    (("Ciudad de México", "0####"), ("Guadalajara", "44###"), ("Monterrey", "64###"),
     ("Puebla", "72###")),
    (("Riyadh", "1####"), ("Jeddah", "2####"), ("Dammam", "3####"), ("Mecca", "24###")),
)  # fmt: skip
