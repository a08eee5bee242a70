-- The default domain of a fresh checkout: `make run` serves it.
VirtualHost "localhost"

-- Group chat rooms on conference.localhost (XEP-0045)
Component "conference.localhost" "muc"
