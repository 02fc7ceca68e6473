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
LONE_SURROGATE = (
    "Requête '{request}' invalide : le champ '{field}' contient un caractère incomplet"
    " (demi-paire UTF-16)."
)
FIELD_WRONG_TYPE = "Requête '{request}' invalide : le champ '{field}' doit être {expected}."
LINE_TOO_LONG = "Ligne trop longue (plus de {limit} octets) : ignorée."
CONTENT_TOO_LONG = "Message trop long ({length} caractères, maximum {limit})."
NAME_LENGTH = "Nom invalide : 1 à {limit} caractères."
NAME_OUTER_SPACE = "Nom invalide : pas d'espace au début ni à la fin."
NAME_INVISIBLE = "Nom invalide : caractère invisible, de contrôle ou d'espacement spécial ({code})."
NAME_MIXED_SCRIPTS = (
    "Nom invalide : il mélange des alphabets qui se ressemblent ({scripts}) ;"
    " écrivez-le dans un seul alphabet."
)
NAME_RESERVED = "Nom réservé : {name}."
PASSWORD_INVALID = "Mot de passe invalide : 1 à {limit} caractères."  # noqa: S105
STATUS_INVALID = "Statut invalide : {state}. Valeurs possibles : {allowed}."
NOT_LOGGED_IN = "Connectez-vous d'abord (requête '{request}')."
UNKNOWN_RECIPIENT = "Utilisateur inconnu : {name}."
RECIPIENT_OFFLINE = "{name} est hors ligne : le message est conservé dans l'historique."
CUT_OFF = (
    "Connexion coupée par le serveur : trop de requêtes ou de données d'affilée."
    " Reconnectez-vous plus lentement."
)
RATE_LIMITED = "Trop de requêtes : ralentissez (message ignoré)."
SERVER_FULL = "Serveur complet : réessayez plus tard."
TOO_MANY_FROM_ADDRESS = "Trop de connexions depuis votre adresse : réessayez plus tard."
INTERNAL_ERROR = "Erreur interne du serveur : requête ignorée."
SHUTDOWN_NOTICE = "Le serveur s'arrête. Vous pourrez vous reconnecter dans quelques instants."
NOT_IN_CHANNEL = "Vous n'êtes pas dans le salon {channel} : rejoignez-le d'abord (join_channel)."
CHANNEL_INVALID = "Nom de salon invalide : {channel} (ex. #dev : lettres, chiffres, - et _)."
CHANNEL_NOT_ALLOWED = "Salon non autorisé sur ce serveur : {channel}."
TOO_MANY_JOINED = "Vous êtes déjà dans {limit} salons : quittez-en un d'abord."
TOO_MANY_CHANNELS = "Le serveur a déjà {limit} salons : rejoignez un salon existant."
CANNOT_LEAVE_DEFAULT = "Impossible de quitter le salon {channel}."
JOINED = "Vous avez rejoint {channel}."
LEFT = "Vous avez quitté {channel}."
HISTORY_PRIVATE_NEEDS_LOGIN = "L'historique privé demande d'être connecté avec un compte."
HASH_BUSY = "Serveur occupé par d'autres connexions : réessayez dans quelques secondes."

# Moderation (issue 12)
# Written for students: short, friendly, and they always say what still works.
# Role names as students read them (keys: moderation.Role values).
ROLE_LABELS = {"student": "élève", "moderator": "modérateur", "teacher": "professeur"}
MOD_RESERVED = "La commande /{verb} est réservée aux professeurs et aux modérateurs."
MOD_TEACHER_ONLY = "La commande /{verb} est réservée aux professeurs."
MOD_NOT_ON_TARGET = "Impossible : {name} est {role}."
MOD_TEACHER_FROM_VM = (
    "Le rôle professeur se donne seulement depuis la VM :"
    " python3 -m classcord admin role NOM teacher."
)
MOD_UNKNOWN_COMMAND = "Commande inconnue : /{verb}."
MOD_HELP = (
    "Commandes : /mute /unmute /silence /slow /private /delete /kick /ban /unban"
    " /announce /who /modlog /role. Durées : 30s, 10m, 1h, 2j, 1h30m."
    ' Un nom avec une espace s\'écrit entre guillemets : "Léa Martin".'
)
MOD_USAGE_MUTE = "Usage : /mute NOM [DURÉE] [RAISON] (ex. /mute Léa 10m bavardages)"
MOD_USAGE_UNMUTE = "Usage : /unmute NOM"
MOD_USAGE_SILENCE = "Usage : /silence [#salon] [DURÉE] ou /silence [#salon] off"
MOD_USAGE_SLOW = "Usage : /slow SECONDES [#salon] ou /slow off [#salon]"
MOD_USAGE_PRIVATE = "Usage : /private off|on [NOM]"
MOD_USAGE_DELETE = "Usage : /delete NOM [N] (ses N derniers messages, 1 par défaut)"
MOD_USAGE_KICK = "Usage : /kick NOM [RAISON]"
MOD_USAGE_BAN = "Usage : /ban NOM [DURÉE] [RAISON] (sans durée : jusqu'à /unban)"
MOD_USAGE_UNBAN = "Usage : /unban NOM"
MOD_USAGE_ANNOUNCE = "Usage : /announce TEXTE"
MOD_USAGE_WHO = "Usage : /who"
MOD_USAGE_MODLOG = "Usage : /modlog [N] (les N dernières actions)"
MOD_USAGE_ROLE = "Usage : /role NOM moderator|student"
MOD_USAGE_HELP = "Usage : /aide"
MOD_BAD_DURATION = "Durée invalide : {value} (ex. 30s, 10m, 1h, 2j ; {limit} au plus)."
MOD_BAD_NUMBER = "Nombre invalide : {value} (de 1 à {limit})."
MOD_BAD_CHANNEL = "Salon invalide : {value} (ex. #dev)."
MOD_BAD_ROLE = "Rôle invalide : {value} (moderator ou student)."
MOD_TOO_MANY_ARGUMENTS = "Trop d'arguments : {value}."
MOD_MISSING_NAME = "Il manque le nom."
MOD_MISSING_TEXT = "Il manque le texte."
MOD_REASON_TOO_LONG = "Raison trop longue ({limit} caractères au plus)."
MOD_UNCLOSED_QUOTE = "Guillemet non fermé."
# Pieces of sentences.
MOD_UNTIL_TIME = " jusqu'à {time}"
MOD_UNTIL_DATE = " jusqu'au {date} à {time}"
MOD_REASON = " (raison : {reason})"
MOD_IN_CHANNEL = " dans {channel}"
# What a student reads when a message is refused (nothing was sent).
MOD_MUTED_POST = (
    "Vous êtes en sourdine{until} : votre message n'a pas été envoyé."
    " Vous pouvez toujours lire et écrire en privé au professeur."
)
MOD_MUTED_PRIVATE = (
    "Vous êtes en sourdine{until} : en privé, vous pouvez écrire seulement"
    " au professeur ou aux modérateurs."
)
MOD_SILENCE_POST = (
    "Silence{where}{until} : personne ne peut écrire pour l'instant,"
    " votre message n'a pas été envoyé. Vous pouvez toujours lire."
)
MOD_SLOW_POST = "Mode lent{where} : attendez {seconds} s avant votre prochain message."
MOD_PRIVATE_OFF = (
    "Les messages privés sont désactivés : vous pouvez écrire en privé seulement"
    " au professeur ou aux modérateurs."
)
MOD_PRIVATE_OFF_RECIPIENT = "{name} ne peut pas recevoir de messages privés pour l'instant."
# To the one concerned (a private message from Serveur).
MOD_YOU_MUTED = "Vous êtes en sourdine{until}{reason}. Vous pouvez toujours lire le chat."
MOD_YOU_UNMUTED = "Vous n'êtes plus en sourdine : vous pouvez écrire à nouveau."
MOD_YOU_PRIVATE_OFF = (
    "Vos messages privés sont désactivés : le professeur et les modérateurs restent joignables."
)
MOD_YOU_PRIVATE_ON = "Vos messages privés sont réactivés."
MOD_YOUR_MESSAGE_REMOVED = "Un de vos messages a été retiré par la modération."
MOD_YOUR_MESSAGES_REMOVED = "{count} de vos messages ont été retirés par la modération."
MOD_YOU_KICKED = "Vous avez été déconnecté par la modération{reason}."
MOD_YOU_BANNED = "Votre compte est banni{until}{reason}."
MOD_YOU_ROLE = "Vous êtes maintenant {role}."
# To everybody (a global message from Serveur).
MOD_ANNOUNCE_MUTED = "{name} est en sourdine{until}."
MOD_ANNOUNCE_UNMUTED = "{name} n'est plus en sourdine."
MOD_ANNOUNCE_SILENCE_ON = (
    "Silence{where}{until} : seuls le professeur et les modérateurs peuvent écrire."
    " Vous pouvez toujours lire."
)
MOD_ANNOUNCE_SILENCE_OFF = "Fin du silence{where} : vous pouvez écrire à nouveau."
MOD_ANNOUNCE_SLOW_ON = "Mode lent{where} : un message toutes les {seconds} s par personne."
MOD_ANNOUNCE_SLOW_OFF = "Fin du mode lent{where}."
MOD_ANNOUNCE_PRIVATE_OFF = "Les messages privés entre élèves sont désactivés."
MOD_ANNOUNCE_PRIVATE_ON = "Les messages privés entre élèves sont réactivés."
MOD_ANNOUNCE_MESSAGE_REMOVED = "Un message de {name} a été retiré par la modération."
MOD_ANNOUNCE_MESSAGES_REMOVED = "{count} messages de {name} ont été retirés par la modération."
MOD_ANNOUNCE_KICKED = "{name} a été déconnecté par la modération."
MOD_ANNOUNCE_BANNED = "{name} a été banni{until}."
MOD_ANNOUNCE_ROLE = "{name} est maintenant {role}."
# To the moderator or teacher who acted (a private message from Serveur).
MOD_DONE_PRIVATE_OFF_FOR = "Messages privés désactivés pour {name}."
MOD_DONE_PRIVATE_ON_FOR = "Messages privés réactivés pour {name}."
MOD_DONE_UNBANNED = "{name} n'est plus banni."
MOD_NOT_MUTED = "{name} n'est pas en sourdine."
MOD_NOT_BANNED = "{name} n'est pas banni."
MOD_NO_SILENCE = "Pas de silence en cours{where}."
MOD_NO_SLOW = "Pas de mode lent en cours{where}."
MOD_NO_MESSAGES = "Aucun message de {name} à retirer."
MOD_LOG_EMPTY = "Journal de modération vide."
MOD_LOG_LINE = "{time} {actor} {action} {target}{where}{until}{reason}"
# The actor of what the server does by itself (an expiry) in the moderation log.
MOD_EXPIRED = "expiré"
MOD_NO_SUCH_USER = "Personne ne s'appelle {name} (ni en ligne ni avec un compte)."
MOD_NO_ACCOUNT = "{name} n'a pas de compte : un invité peut seulement être déconnecté (/kick)."
MOD_NOT_ONLINE = "{name} n'est pas en ligne."
MOD_NOT_SAVED = (
    "Attention : l'action s'applique, mais la base de données l'a refusée"
    " ({reason}) : elle sera perdue au redémarrage."
)
MOD_DELETE_FAILED = "Messages non retirés : la base de données ne répond pas ({reason})."
MOD_WHO_LINE = "{name} ({role}, {state}){notes}"
MOD_WHO_MUTED = ", en sourdine{until}"
MOD_WHO_PRIVATE_OFF = ", messages privés désactivés"
MOD_WHO_GUEST = ", invité"
MOD_WHO_RULES = "En cours : {rules}."
MOD_WHO_NOBODY = "Personne n'est en ligne."
MOD_WHO_RULE_SILENCE = "silence{where}{until}"
MOD_WHO_RULE_SLOW = "mode lent{where} ({seconds} s)"
MOD_WHO_RULE_PRIVATE_OFF = "messages privés désactivés"
MOD_MUTED_COMMAND = "Vous êtes en sourdine : vos commandes de modération sont suspendues."
MOD_STORAGE_FAILED = "Commande non exécutée : la base de données ne répond pas ({reason})."
