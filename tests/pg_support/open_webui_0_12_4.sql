-- Open WebUI 0.12.4's own tables that modelgate reads, as its alembic
-- migrations create them on PostgreSQL 15 (pg_dump --schema-only of a
-- database migrated to head 0bd252b206fb; "public." removed so the tables
-- land in the search_path's schema, as with DATABASE_SCHEMA).

CREATE TABLE alembic_version (
    version_num character varying(32) NOT NULL
);

CREATE TABLE api_key (
    id text NOT NULL,
    user_id text,
    key text NOT NULL,
    data json,
    expires_at bigint,
    last_used_at bigint,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
);

CREATE TABLE auth (
    id character varying NOT NULL,
    email character varying,
    password text,
    active boolean,
    mfa json,
    session_stamp text
);

CREATE TABLE "group" (
    id text NOT NULL,
    user_id text,
    name text,
    description text,
    data json,
    meta json,
    permissions json,
    created_at bigint,
    updated_at bigint,
    parent_group_id text
);

CREATE TABLE group_member (
    id text NOT NULL,
    group_id text NOT NULL,
    user_id text NOT NULL,
    created_at bigint,
    updated_at bigint
);

CREATE TABLE message (
    id text NOT NULL,
    user_id text,
    channel_id text,
    content text,
    data json,
    meta json,
    created_at bigint,
    updated_at bigint,
    parent_id text,
    reply_to_id text,
    is_pinned boolean DEFAULT false NOT NULL,
    pinned_at bigint,
    pinned_by text,
    app_id text
);

CREATE TABLE model (
    id text NOT NULL,
    user_id text,
    base_model_id text,
    name text,
    params text,
    meta text,
    updated_at bigint,
    created_at bigint,
    is_active boolean DEFAULT true NOT NULL,
    version_id text
);

CREATE TABLE "user" (
    id character varying NOT NULL,
    name character varying,
    email character varying,
    role character varying,
    profile_image_url text,
    last_active_at bigint,
    updated_at bigint,
    created_at bigint,
    settings json,
    info json,
    username character varying(50),
    bio text,
    gender text,
    date_of_birth date,
    profile_banner_image_url text,
    timezone character varying,
    presence_state character varying,
    status_emoji character varying,
    status_message text,
    status_expires_at bigint,
    oauth json,
    scim json,
    variables json
);

ALTER TABLE ONLY alembic_version
    ADD CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num);

ALTER TABLE ONLY api_key
    ADD CONSTRAINT api_key_key_key UNIQUE (key);

ALTER TABLE ONLY api_key
    ADD CONSTRAINT api_key_pkey PRIMARY KEY (id);

ALTER TABLE ONLY auth
    ADD CONSTRAINT auth_pkey PRIMARY KEY (id);

ALTER TABLE ONLY group_member
    ADD CONSTRAINT group_member_pkey PRIMARY KEY (id);

ALTER TABLE ONLY "group"
    ADD CONSTRAINT group_pkey PRIMARY KEY (id);

ALTER TABLE ONLY message
    ADD CONSTRAINT message_pkey PRIMARY KEY (id);

ALTER TABLE ONLY model
    ADD CONSTRAINT model_pkey PRIMARY KEY (id);

ALTER TABLE ONLY group_member
    ADD CONSTRAINT uq_group_member_group_user UNIQUE (group_id, user_id);

ALTER TABLE ONLY "user"
    ADD CONSTRAINT user_pkey PRIMARY KEY (id);

CREATE INDEX ix_group_member_user_id_group_id ON group_member USING btree (user_id, group_id);

CREATE INDEX ix_group_parent_group_id ON "group" USING btree (parent_group_id);

CREATE INDEX ix_message_app ON message USING btree (app_id);

CREATE UNIQUE INDEX uq_user_email_lower ON "user" USING btree (lower((email)::text)) WHERE (email IS NOT NULL);

ALTER TABLE ONLY api_key
    ADD CONSTRAINT api_key_user_id_fkey FOREIGN KEY (user_id) REFERENCES "user"(id) ON DELETE CASCADE;

ALTER TABLE ONLY "group"
    ADD CONSTRAINT fk_group_parent FOREIGN KEY (parent_group_id) REFERENCES "group"(id) ON DELETE SET NULL;

ALTER TABLE ONLY group_member
    ADD CONSTRAINT group_member_group_id_fkey FOREIGN KEY (group_id) REFERENCES "group"(id) ON DELETE CASCADE;

ALTER TABLE ONLY group_member
    ADD CONSTRAINT group_member_user_id_fkey FOREIGN KEY (user_id) REFERENCES "user"(id) ON DELETE CASCADE;

INSERT INTO alembic_version (version_num) VALUES ('0bd252b206fb');
