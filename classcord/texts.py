"""Every text a client can read, in one place (French: the users are French students).

Two error texts are fixed by the wire contract and stay in English word for word:
real clients match on them (PROTOCOL-COMPAT.md).
"""

from __future__ import annotations

# Fixed by the wire contract: do not translate.
USERNAME_EXISTS = "Username already exists."
LOGIN_FAILED = "Login failed."

SERVER_NAME = "Serveur"
GUEST_NAME = "invité"

INVALID_JSON = "JSON invalide (colonne {column}) : chaque ligne doit être un objet JSON."
TOO_DEEP = "JSON invalide : imbrication trop profonde."
NOT_AN_OBJECT = "Requête invalide : chaque ligne doit être un objet JSON {...}."
MISSING_TYPE = "Requête invalide : le champ 'type' (texte) est obligatoire."
FIELD_REQUIRED = "Requête '{request}' invalide : le champ '{field}' (texte) est obligatoire."
FIELD_WRONG_TYPE = "Requête '{request}' invalide : le champ '{field}' doit être {expected}."
LINE_TOO_LONG = "Ligne trop longue (plus de {limit} octets) : ignorée."
CONTENT_TOO_LONG = "Message trop long ({length} caractères, maximum {limit})."
NAME_INVALID = "Nom invalide : 1 à {limit} caractères, sans caractère de contrôle ni espace autour."
NAME_RESERVED = "Nom réservé : {name}."
PASSWORD_INVALID = "Mot de passe invalide : 1 à {limit} caractères."  # noqa: S105
STATUS_INVALID = "Statut invalide : {state}. Valeurs possibles : {allowed}."
NOT_LOGGED_IN = "Connectez-vous d'abord (requête '{request}')."
UNKNOWN_RECIPIENT = "Utilisateur inconnu : {name}."
RECIPIENT_OFFLINE = "{name} est hors ligne : le message est conservé dans l'historique."
RATE_LIMITED = "Trop de requêtes : ralentissez (message ignoré)."
SERVER_FULL = "Serveur complet : réessayez plus tard."
TOO_MANY_FROM_ADDRESS = "Trop de connexions depuis votre adresse : réessayez plus tard."
INTERNAL_ERROR = "Erreur interne du serveur : requête ignorée."
SHUTDOWN_NOTICE = "Le serveur s'arrête. Vous pourrez vous reconnecter dans quelques instants."
BANNED = "Ce compte est banni."
KICKED = "Vous avez été déconnecté par l'administrateur{reason}."
NOT_IN_CHANNEL = "Vous n'êtes pas dans le salon {channel} : rejoignez-le d'abord (join_channel)."
CHANNEL_INVALID = "Nom de salon invalide : {channel} (ex. #dev : lettres, chiffres, - et _)."
CHANNEL_NOT_ALLOWED = "Salon non autorisé sur ce serveur : {channel}."
CANNOT_LEAVE_DEFAULT = "Impossible de quitter le salon {channel}."
JOINED = "Vous avez rejoint {channel}."
LEFT = "Vous avez quitté {channel}."
HISTORY_PRIVATE_NEEDS_LOGIN = "L'historique privé demande d'être connecté avec un compte."
HASH_BUSY = "Serveur occupé par d'autres connexions : réessayez dans quelques secondes."
