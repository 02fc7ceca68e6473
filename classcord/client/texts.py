"""Every text the terminal client shows, in one place (French, like the server's).

The server's own texts are in ``classcord.texts``; these are the client's: help,
prompts, notes about what a command did, and the words for each status.
"""

from __future__ import annotations

from typing import Final

STATUS_WORDS: Final = {
    "online": "est en ligne",
    "away": "est absent(e)",
    "dnd": "est occupé(e) (ne pas déranger)",
    "invisible": "est invisible",
    "offline": "est hors ligne",
}
STATUS_SHORT: Final = {
    "online": "en ligne",
    "away": "absent(e)",
    "dnd": "occupé(e)",
    "invisible": "invisible",
    "offline": "hors ligne",
}

HELP: Final = """\
Commandes :
  /register NOM               créer un compte (mot de passe demandé), puis se connecter
  /login NOM                  se connecter (mot de passe demandé)
  /guest [NOM]                entrer comme invité (un suffixe est ajouté si le nom est pris)
  TEXTE                       envoyer au salon courant
  //TEXTE                     envoyer un texte qui commence par /
  /msg NOM TEXTE              message privé (nom avec espaces : /msg "Jean D" TEXTE)
  /status ÉTAT                online, away, dnd ou invisible (ou en-ligne, absent, occupé)
  /join #SALON                rejoindre un salon ; il devient le salon courant
  /leave [#SALON]             quitter un salon (par défaut : le salon courant)
  /channels                   liste des salons
  /users                      qui est en ligne
  /history [#SALON|NOM] [N]   les N derniers messages d'un salon ou d'une conversation privée
  /help                       cette aide
  /quit                       quitter
Professeurs et modérateurs (voir /aide) : /mute NOM [DURÉE] [RAISON], /unmute NOM,
  /silence, /slow SECONDES, /private off|on [NOM], /delete NOM [N], /kick NOM,
  /ban NOM [DURÉE], /unban NOM, /announce TEXTE, /modlog [N], /role NOM RÔLE ;
  /mod who : qui est en ligne, avec les rôles et les règles en cours
Sans terminal (commandes lues dans un fichier ou un tube), le mot de passe suit le nom :
  /login NOM MOTDEPASSE"""
USAGES: Final = {
    "msg": "/msg NOM TEXTE",
    "login": "/login NOM [MOTDEPASSE]",
    "register": "/register NOM [MOTDEPASSE]",
    "guest": "/guest [NOM]",
    "status": "/status online|away|dnd|invisible",
    "join": "/join #SALON",
    "leave": "/leave [#SALON]",
    "history": "/history [#SALON|NOM] [N]",
}
WELCOME: Final = (
    "Connecté à {address} ({server}). Identifiez-vous : /login NOM, /register NOM "
    "ou /guest [NOM]. /help pour l'aide."
)
WELCOME_LEGACY: Final = (
    "Connecté à {address} (serveur sans extensions : ni salons ni historique). "
    "Identifiez-vous : /login NOM, /register NOM ou /guest [NOM]."
)
CANNOT_CONNECT: Final = (
    "classcord client : impossible de se connecter à {address} ({reason}). "
    "Le serveur est-il lancé ? Vérifiez avec : python3 -m classcord healthcheck "
    "--host {host} --port {port}"
)
CLOSED_BY_SERVER: Final = "Connexion fermée par le serveur."
GOODBYE: Final = "Déconnecté."
NO_REPLY: Final = "Pas de réponse du serveur en {timeout:g} s."
LOG_IN_FIRST: Final = "Identifiez-vous d'abord : /login NOM, /register NOM ou /guest [NOM]."
ALREADY_IDENTIFIED: Final = "Vous êtes déjà connecté(e) sous le nom {name}."
UNKNOWN_COMMAND: Final = "Commande inconnue : /{name} (tapez /help)."
USAGE: Final = "Usage : {usage}"
# Prompts and messages about passwords, not passwords.
PASSWORD_PROMPT: Final = "Mot de passe : "  # noqa: S105
PASSWORD_AGAIN: Final = "Mot de passe (encore) : "  # noqa: S105
PASSWORD_MISMATCH: Final = "Les deux mots de passe diffèrent : compte non créé."  # noqa: S105
PASSWORD_MISSING: Final = "Mot de passe manquant : hors d'un terminal, /{command} NOM MOTDEPASSE."  # noqa: S105
LOGGED_IN: Final = "Connecté(e) en tant que {name}."
LOGIN_HINT: Final = (
    "Nom ou mot de passe incorrect (après plusieurs échecs, le compte est bloqué une minute)."
)
REGISTERED: Final = "Compte {name} créé."
REGISTER_HINT: Final = "Ce nom est déjà pris : choisissez-en un autre."
GUEST_AS: Final = "Vous êtes invité(e) sous le nom {name}."
GUEST_RENAMED: Final = "Vous êtes invité(e) sous le nom {name} ({requested} était pris)."
GUEST_UNKNOWN: Final = (
    "Vous êtes invité(e), mais le serveur n'a pas dit sous quel nom (demandé : {requested})."
)
CONTENT_TOO_LONG: Final = "Message trop long ({length} caractères, maximum {limit}) : non envoyé."
STATUS_UNKNOWN: Final = "Statut inconnu : {state}. Valeurs possibles : {allowed}."
STATUS_SET: Final = "Votre statut : {state}."
JOINED: Final = "Vous avez rejoint {channel} ({members} membre(s)) : vos messages y vont."
LEFT: Final = "Vous avez quitté {channel}."
BACK_TO: Final = "Vous avez quitté {channel} : retour dans {current}."
ERROR: Final = "!!! Erreur : {message}"
ONLINE: Final = "En ligne ({count}) : {names}."
NOBODY: Final = "Personne en ligne."
CHANNELS: Final = "Salons : {channels}."
HISTORY_HEAD: Final = "Historique de {what} ({count} message(s)) :"
HISTORY_EMPTY: Final = "Aucun message dans l'historique de {what}."
HISTORY_TAIL: Final = "Fin de l'historique."
YOU: Final = "vous"
NON_JSON: Final = "(ligne non JSON) {line}"
NO_MODERATION: Final = (
    "Ce serveur ne propose pas les commandes de modération (serveur ancien ?) : rien envoyé."
)
